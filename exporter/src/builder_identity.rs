//! The Koji host name this machine builds as, for `koji_builder_info{host}`.
//!
//! kojid logs in under the machine's fully qualified name unless told otherwise, so that is
//! the default; `builder.host_name` overrides it where they differ.

/// This machine's fully qualified domain name: the kernel's host name if it already has a
/// domain, else the canonical name the resolver gives for it, else the bare host name.
/// Blocking (it may ask DNS): call it off the async runtime.
pub fn fully_qualified_host_name() -> String {
    let uname = rustix::system::uname();
    let node = uname.nodename().to_string_lossy().into_owned();
    if node.contains('.') {
        return node;
    }
    let hints = dns_lookup::AddrInfoHints {
        flags: libc::AI_CANONNAME,
        ..Default::default()
    };
    dns_lookup::getaddrinfo(Some(&node), None, Some(hints))
        .ok()
        .and_then(|mut results| results.find_map(|info| info.ok()?.canonname))
        .filter(|name| !name.is_empty())
        .unwrap_or(node)
}
