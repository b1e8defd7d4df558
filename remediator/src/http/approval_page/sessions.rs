//! Log-in sessions of the approval page, kept in memory: a restart of the remediator logs
//! everybody out, which is the safe direction. Each session carries its own token against
//! cross-site request forgery, put into every form and checked on every POST.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::Rng;

/// Name of the session cookie.
pub const COOKIE: &str = "koji_remediator_session";

/// At most this many sessions live at once; the oldest go first. A bound, so repeated
/// log-ins cannot grow memory without limit.
const MAX_SESSIONS: usize = 1024;

/// One logged-in on-call person.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    /// The `[[oncall]]` name, journaled with their decisions.
    pub person: String,
    /// The form token against cross-site request forgery.
    pub csrf: String,
    expires: Instant,
}

/// The live sessions.
#[derive(Debug)]
pub struct Sessions {
    lifetime: Duration,
    secure: bool,
    live: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// An empty store whose sessions last `lifetime` from log-in; `secure` when the page is
    /// served over TLS (the cookie then never travels in the clear).
    pub fn new(lifetime: Duration, secure: bool) -> Sessions {
        Sessions {
            lifetime,
            secure,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// The `Set-Cookie` value for a session id (an empty id with `Max-Age=0` ends it).
    pub fn cookie(&self, id: &str) -> String {
        let max_age = if id.is_empty() {
            0
        } else {
            self.lifetime.as_secs()
        };
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}")
    }

    /// Starts a session for `person`; returns its id (the cookie value).
    pub fn start(&self, person: &str) -> String {
        let id = random_token();
        let session = Session {
            person: person.to_owned(),
            csrf: random_token(),
            expires: Instant::now() + self.lifetime,
        };
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        live.retain(|_, s| s.expires > now);
        if live.len() >= MAX_SESSIONS {
            if let Some(oldest) = live
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
            {
                live.remove(&oldest);
            }
        }
        live.insert(id.clone(), session);
        id
    }

    /// The unexpired session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends a session (log-out).
    pub fn end(&self, id: &str) {
        self.live
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }
}

/// 256 random bits from the thread's cryptographically secure generator, as hex.
fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The session cookie's value in a `Cookie` request header.
pub fn cookie_value(cookie_header: &str) -> Option<&str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let sessions = Sessions::new(Duration::from_secs(60), false);
        let id = sessions.start("alice");
        let session = sessions.get(&id).unwrap();
        assert_eq!(session.person, "alice");
        assert_eq!(session.csrf.len(), 64);
        assert_ne!(session.csrf, id);
        assert!(sessions.get("not-a-session").is_none());
        sessions.end(&id);
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn an_expired_session_is_not_found() {
        let sessions = Sessions::new(Duration::ZERO, false);
        let id = sessions.start("alice");
        assert!(sessions.get(&id).is_none());
    }

    #[test]
    fn the_store_is_bounded() {
        let sessions = Sessions::new(Duration::from_secs(60), false);
        let first = sessions.start("alice");
        for _ in 0..MAX_SESSIONS {
            sessions.start("bob");
        }
        assert!(sessions.get(&first).is_none());
        assert_eq!(sessions.live.lock().unwrap().len(), MAX_SESSIONS);
    }

    #[test]
    fn cookies_are_strict_and_secure_over_tls() {
        let tls = Sessions::new(Duration::from_secs(60), true);
        assert_eq!(
            tls.cookie("abc"),
            "koji_remediator_session=abc; Path=/; HttpOnly; SameSite=Strict; Max-Age=60; Secure"
        );
        assert!(tls.cookie("").contains("Max-Age=0"));
        let plain = Sessions::new(Duration::from_secs(60), false);
        assert!(!plain.cookie("abc").contains("Secure"));
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        assert_eq!(
            cookie_value("a=1; koji_remediator_session=abc; b=2"),
            Some("abc")
        );
        assert_eq!(cookie_value("koji_remediator_session_x=abc"), None);
        assert_eq!(cookie_value(""), None);
    }
}
