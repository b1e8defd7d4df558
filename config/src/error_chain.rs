//! One-line error messages that keep the causes libraries hide in `source()` (the server's
//! message in a tokio-postgres error, the certificate problem in a reqwest error).

/// Formats an error with its whole `source()` chain, since tokio-postgres puts the server's
/// message (the part on-call needs) in the source, not in the top-level text.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
