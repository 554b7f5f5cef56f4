//! TURN for clients behind strict firewalls: the hub hands them `iceServers` with time-limited
//! credentials that a TURN server sharing a secret with the hub (Debian's `coturn` with
//! `use-auth-secret` / `static-auth-secret`) checks without calling back — the "TURN REST API"
//! scheme (draft-uberti-behave-turn-rest, the basis of RFC 7635's ephemeral credentials):
//!
//! ```text
//! username   = "{expiry unix seconds}:{subject}"
//! credential = base64(HMAC-SHA1(secret, username))
//! ```
//!
//! coturn refuses a username whose expiry has passed, so a leaked credential is good for `ttl`
//! at most. Handed out in a room's `joined` answer (`ice_servers`) and as `Link: <url>;
//! rel="ice-server"` headers on WHIP/WHEP answers (RFC 9725 §4.6).

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use shangliang_signaling::media::IceServer;

/// Longest TURN secret accepted (coturn's own limit is far above any sane secret).
const MAX_SECRET_BYTES: usize = 1024;
/// Longest subject put into a username (coturn limits usernames to 512 bytes).
const MAX_SUBJECT_BYTES: usize = 200;

/// The hub's TURN servers and the secret it shares with them.
#[derive(Clone)]
pub struct TurnConfig {
    /// `turn:` / `turns:` / `stun:` URLs, e.g. `turn:turn.example.org:3478?transport=udp`.
    pub urls: Vec<String>,
    secret: Vec<u8>,
    /// How long credentials stay valid.
    pub ttl: Duration,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TurnConfig").field("urls", &self.urls).field("secret", &"<redacted>").field("ttl", &self.ttl).finish()
    }
}

impl TurnConfig {
    /// Checked configuration: at least one URL, each a `turn:`, `turns:` or `stun:` URL, and a
    /// non-empty secret (the `--turn-url`, `--turn-secret`, `--turn-ttl-secs` flags).
    pub fn new(urls: Vec<String>, secret: &str, ttl: Duration) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("--turn-secret needs at least one --turn-url".into());
        }
        for u in &urls {
            let scheme = u.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
            if !matches!(scheme.as_deref(), Some("turn" | "turns" | "stun")) || u.len() <= 5 || u.chars().any(|c| c.is_whitespace() || c == '"' || c == '>') {
                return Err(format!("--turn-url {u:?}: expected turn:HOST[:PORT][?transport=udp|tcp], turns:… or stun:…"));
            }
        }
        if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
            return Err(format!("--turn-secret must be 1 to {MAX_SECRET_BYTES} bytes"));
        }
        if ttl.is_zero() {
            return Err("--turn-ttl-secs must be above 0".into());
        }
        Ok(Self { urls, secret: secret.as_bytes().to_vec(), ttl })
    }

    /// The ICE server entry for `subject` at `now_secs` (unix seconds).
    pub fn ice_server(&self, subject: &str, now_secs: u64) -> IceServer {
        let (username, credential) = credentials(&self.secret, subject, now_secs + self.ttl.as_secs());
        IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(credential) }
    }

    /// The `Link` header values of a WHIP/WHEP answer (RFC 9725 §4.6), one per URL.
    pub fn link_headers(&self, subject: &str, now_secs: u64) -> Vec<String> {
        let s = self.ice_server(subject, now_secs);
        let (u, c) = (s.username.unwrap_or_default(), s.credential.unwrap_or_default());
        s.urls
            .iter()
            .map(|url| {
                if url.starts_with("stun:") {
                    format!("<{url}>; rel=\"ice-server\"")
                } else {
                    format!("<{url}>; rel=\"ice-server\"; username=\"{u}\"; credential=\"{c}\"; credential-type=\"password\"")
                }
            })
            .collect()
    }
}

/// `(username, credential)` valid until `expiry` (unix seconds) for `subject`. The subject is
/// cut to [`MAX_SUBJECT_BYTES`] on a character boundary and stripped of `:` (coturn reads the
/// expiry up to the first colon) and of characters that a `Link` header would need to quote.
pub fn credentials(secret: &[u8], subject: &str, expiry: u64) -> (String, String) {
    let mut clean = String::new();
    for ch in subject.chars().filter(|c| !matches!(c, ':' | '"' | '\\') && !c.is_control()) {
        if clean.len() + ch.len_utf8() > MAX_SUBJECT_BYTES {
            break;
        }
        clean.push(ch);
    }
    let username = format!("{expiry}:{clean}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_the_coturn_rest_scheme() {
        // Computed independently: printf '1700000000:guest' | openssl dgst -sha1 -hmac north -binary | base64
        let (u, c) = credentials(b"north", "guest", 1_700_000_000);
        assert_eq!(u, "1700000000:guest");
        assert_eq!(c, "HLLN6QxeY2XxlWyLJS5pU2bW6Jw=");
    }

    #[test]
    fn the_subject_cannot_smuggle_a_colon_or_a_quote_into_the_username() {
        let (u, _) = credentials(b"k", "member:\"甲\"\n", 5);
        assert_eq!(u, "5:member甲");
        let (long, _) = credentials(b"k", &"委".repeat(400), 5);
        assert!(long.len() <= 2 + MAX_SUBJECT_BYTES && long.is_char_boundary(long.len()));
    }

    #[test]
    fn configuration_is_checked_and_links_carry_the_credentials() {
        assert!(TurnConfig::new(vec![], "s", Duration::from_secs(60)).is_err());
        assert!(TurnConfig::new(vec!["http://x".into()], "s", Duration::from_secs(60)).is_err());
        assert!(TurnConfig::new(vec!["turn:x".into()], "", Duration::from_secs(60)).is_err());
        let t = TurnConfig::new(vec!["turn:127.0.0.1:3478?transport=udp".into(), "stun:127.0.0.1:3478".into()], "s", Duration::from_secs(600)).unwrap();
        assert!(!format!("{t:?}").contains("\"s\""), "the secret is not logged");
        let s = t.ice_server("member:alice", 1000);
        assert_eq!(s.username.as_deref(), Some("1600:memberalice"));
        let links = t.link_headers("member:alice", 1000);
        assert_eq!(links.len(), 2);
        assert!(links[0].starts_with("<turn:127.0.0.1:3478?transport=udp>; rel=\"ice-server\"; username=\"1600:memberalice\"; credential=\""), "{}", links[0]);
        assert_eq!(links[1], "<stun:127.0.0.1:3478>; rel=\"ice-server\"");
    }
}
