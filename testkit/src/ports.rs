//! Free TCP ports for the servers tests start (Prometheus, Alertmanager, the binaries, hubs,
//! private PostgreSQL clusters).
//!
//! A port the kernel hands out for `127.0.0.1:0` comes from the ephemeral range
//! (`/proc/sys/net/ipv4/ip_local_port_range`, 32768-60999 by default), which every outgoing
//! connection of every parallel test also draws from: between our check and the server's
//! own bind, a client may take it ("address already in use", seen in CI). Ports are
//! therefore chosen below that range, at random, and checked free by binding them.

use std::sync::atomic::{AtomicU16, Ordering};

/// The range chosen from: below the default ephemeral range, above well-known services.
const FIRST: u16 = 20_000;
const COUNT: u16 = 12_000;

/// Where this process starts looking, spread by process id so parallel test processes
/// start far apart; then it walks on from the last port given.
static NEXT: AtomicU16 = AtomicU16::new(0);

/// A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral range.
pub fn free_port() -> u16 {
    let start = (std::process::id() % u32::from(COUNT)) as u16;
    for _ in 0..COUNT {
        let step = NEXT.fetch_add(7, Ordering::Relaxed);
        let port = FIRST + start.wrapping_add(step) % COUNT;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP port between {FIRST} and {}", FIRST + COUNT)
}

#[cfg(test)]
mod tests {
    use super::free_port;

    #[test]
    fn ports_are_outside_the_ephemeral_range_and_distinct() {
        let a = free_port();
        let b = free_port();
        assert!((20_000..32_000).contains(&a) && (20_000..32_000).contains(&b));
        assert_ne!(a, b);
        std::net::TcpListener::bind(("127.0.0.1", a)).expect("free");
    }
}
