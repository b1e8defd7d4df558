//! Checking alert rules against a running loop. A rule's expression returns data only
//! while it fires, so "every rule evaluates to something" is checked on its *bool form*:
//! each comparison `a > b` becomes `a > bool b`, which keeps every series the comparison
//! would test, with 0 or 1 as value. A non-empty bool form proves every metric the rule
//! reads exists with the labels its joins (`on(...)`, `and`, `group_left`) match on, which
//! is what breaks silently when an exporter renames a label or a metric.
//!
//! Two more rewrites keep that proof possible on a young Prometheus: an `offset` modifier
//! is dropped (it reaches back before the loop's data began and changes no label), and
//! `unless` becomes `and` (in the bool form both sides always have series, so `unless`
//! would remove everything; `and` still proves the two sides match on their labels).

/// The expression with `bool` after every comparison operator outside label matchers,
/// strings and range selectors, without `offset` modifiers, and with `and` for `unless`.
pub fn bool_form(expr: &str) -> String {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = String::with_capacity(expr.len() + 32);
    let mut braces = 0usize;
    let mut brackets = 0usize;
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if let Some(q) = quote {
            out.push(c);
            if c == '\\' {
                if let Some(n) = next {
                    out.push(n);
                    i += 1;
                }
            } else if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '{' => braces += 1,
            '}' => braces = braces.saturating_sub(1),
            '[' => brackets += 1,
            ']' => brackets = brackets.saturating_sub(1),
            _ => {}
        }
        let outside = braces == 0 && brackets == 0;
        let word_start = i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if outside && word_start && keyword(&chars[i..], "offset") {
            // Skip `offset`, its blanks and its duration.
            i += "offset".len();
            while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                i += 1;
            }
            while chars.get(i).is_some_and(|c| c.is_alphanumeric()) {
                i += 1;
            }
            while out.ends_with(' ') {
                out.pop();
            }
            continue;
        }
        if outside && word_start && keyword(&chars[i..], "unless") {
            out.push_str("and");
            i += "unless".len();
            continue;
        }
        let operator = match (c, next) {
            ('=', Some('=')) | ('!', Some('=')) | ('>', Some('=')) | ('<', Some('=')) => 2,
            ('>', _) | ('<', _) => 1,
            _ => 0,
        };
        if outside && operator > 0 {
            out.extend(&chars[i..i + operator]);
            out.push_str(" bool");
            i += operator;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

/// Whether `rest` begins with the word `word` followed by a blank.
fn keyword(rest: &[char], word: &str) -> bool {
    let length = word.chars().count();
    rest.len() > length
        && rest[..length].iter().copied().eq(word.chars())
        && rest[length].is_whitespace()
}

#[cfg(test)]
mod tests {
    use super::bool_form;

    #[test]
    fn comparisons_become_bool_and_matchers_stay() {
        assert_eq!(bool_form("koji_db_up == 0"), "koji_db_up == bool 0");
        assert_eq!(
            bool_form(r#"a{role!="x",b=~"y>z"} >= 1 and on(host) c < 2"#),
            r#"a{role!="x",b=~"y>z"} >= bool 1 and on(host) c < bool 2"#
        );
        assert_eq!(
            bool_form("(increase(k[30m]) > 0) * on(instance) group_left(host) info"),
            "(increase(k[30m]) > bool 0) * on(instance) group_left(host) info"
        );
        assert_eq!(bool_form("a != b"), "a != bool b");
        assert_eq!(bool_form("rate(x[5m])"), "rate(x[5m])");
        assert_eq!(
            bool_form("a > 0 unless on(i) increase(k[1d] offset 30m) > 0"),
            "a > bool 0 and on(i) increase(k[1d]) > bool 0"
        );
        assert_eq!(
            bool_form(r#"x{job="offset unless"} and offsets_total > 1"#),
            r#"x{job="offset unless"} and offsets_total > bool 1"#
        );
    }
}
