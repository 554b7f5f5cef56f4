//! Signed tokens (JWT, HS256): what they carry, how they are minted and checked.
//!
//! The secret is 32 random bytes kept in `<data-dir>/secret.key` (hex), created on first use, so
//! `shangliang token` and `shangliang serve` with the same data dir agree without configuration.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};
use shangliang_signaling::{ActivityId, Author, ErrorCode, Org, ParticipantId, Role};

use crate::consult::Grants;

/// Claims of a shangliang token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Stable identity (pseudonymous for the public).
    pub sub: ParticipantId,
    /// Display name.
    pub name: String,
    /// Role in the activity.
    pub role: Role,
    /// The activity the token is for.
    pub act: ActivityId,
    /// Organisation, for members and staff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<Org>,
    /// Whether the organisers verified the identity (real name).
    #[serde(default)]
    pub verified: bool,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expiry (Unix seconds).
    pub exp: u64,
}

impl Claims {
    /// The identity as readers of a topic see it.
    pub fn author(&self) -> Author {
        Author { id: self.sub.clone(), name: self.name.clone(), role: self.role, verified: self.verified }
    }

    /// What the token grants, for the state machines.
    pub fn grants(&self) -> Grants {
        Grants {
            subject: self.sub.clone(),
            name: self.name.clone(),
            role: self.role,
            org: self.org.clone(),
            verified: self.verified,
            activity: self.act.clone(),
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Malformed, wrong algorithm or a signature that does not verify (forged).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// Well-formed and signed, but past its expiry.
    #[error("token expired")]
    Expired,
}

impl TokenError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            TokenError::Invalid(_) => ErrorCode::InvalidToken,
            TokenError::Expired => ErrorCode::TokenExpired,
        }
    }
}

/// Mints and checks tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    /// Keys from a raw secret.
    pub fn from_secret(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_exp = true;
        // A token may say from when it holds (`nbf`, RFC 7519 §4.1.5); without one it holds
        // from its issue.
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Loads `<dir>/secret.key`, creating the directory and a fresh random secret if missing.
    pub fn load_or_create(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("secret.key");
        let hex_secret = match std::fs::read_to_string(&path) {
            Ok(s) => s.trim().to_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let bytes: [u8; 32] = rand::random();
                let s = hex::encode(bytes);
                write_private(&path, &s)?;
                s
            }
            Err(e) => return Err(e),
        };
        let secret = hex::decode(&hex_secret).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} is not hex", path.display()))
        })?;
        if secret.len() < 16 {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "secret shorter than 16 bytes"));
        }
        Ok(Self::from_secret(&secret))
    }

    /// Signs claims.
    pub fn mint(&self, claims: &Claims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 signing cannot fail")
    }

    /// Checks signature and expiry and returns the claims.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > shangliang_signaling::limits::MAX_TOKEN_LEN {
            return Err(TokenError::Invalid("token too long".into()));
        }
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => TokenError::Expired,
                ErrorKind::ImmatureSignature => TokenError::Invalid("token not valid yet (nbf is in the future)".into()),
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Parses a lifetime such as `90s`, `15m`, `2h`, `7d` (a bare number is seconds).
pub fn parse_ttl(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num.parse().map_err(|_| format!("bad lifetime {s:?}"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("bad lifetime unit in {s:?} (use s, m, h or d)")),
    };
    n.checked_mul(mult).filter(|&t| t > 0).ok_or_else(|| format!("bad lifetime {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> Claims {
        Claims {
            sub: "u1".into(),
            name: "李四".into(),
            role: Role::Member,
            act: ActivityId::new("demo").unwrap(),
            org: None,
            verified: true,
            iat: now_secs(),
            exp,
        }
    }

    #[test]
    fn minted_token_verifies_to_the_same_claims() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let c = claims(now_secs() + 60);
        assert_eq!(keys.verify(&keys.mint(&c)).unwrap(), c);
    }

    #[test]
    fn a_token_whose_nbf_is_in_the_future_is_refused_until_then() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let keys = TokenKeys::from_secret(secret);
        let with_nbf = |nbf: u64| {
            let mut v = serde_json::to_value(claims(now_secs() + 3600)).unwrap();
            v["nbf"] = nbf.into();
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &v, &EncodingKey::from_secret(secret)).unwrap()
        };
        match keys.verify(&with_nbf(now_secs() + 600)) {
            Err(TokenError::Invalid(m)) => assert!(m.contains("nbf"), "{m}"),
            other => panic!("a token not valid yet was accepted: {other:?}"),
        }
        assert!(keys.verify(&with_nbf(now_secs() - 1)).is_ok(), "valid once nbf has passed");
    }

    #[test]
    fn forged_token_is_refused() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let other = TokenKeys::from_secret(b"another secret, another secret!!");
        let t = other.mint(&claims(now_secs() + 60));
        assert!(matches!(keys.verify(&t), Err(TokenError::Invalid(_))));
        // Tampered payload with the original signature.
        let good = keys.mint(&claims(now_secs() + 60));
        let mut parts: Vec<&str> = good.split('.').collect();
        let evil = keys.mint(&Claims { role: Role::Moderator, ..claims(now_secs() + 60) });
        parts[1] = evil.split('.').nth(1).unwrap();
        let _ = &evil;
        let spliced = format!("{}.{}.{}", parts[0], parts[1], good.split('.').nth(2).unwrap());
        assert!(matches!(keys.verify(&spliced), Err(TokenError::Invalid(_))));
        assert!(matches!(keys.verify("garbage"), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn expired_token_is_refused_as_expired() {
        let keys = TokenKeys::from_secret(b"0123456789abcdef0123456789abcdef");
        let t = keys.mint(&claims(now_secs() - 1));
        assert_eq!(keys.verify(&t), Err(TokenError::Expired));
    }

    #[test]
    fn ttl_parses_units() {
        assert_eq!(parse_ttl("90"), Ok(90));
        assert_eq!(parse_ttl("15m"), Ok(900));
        assert_eq!(parse_ttl("2h"), Ok(7200));
        assert!(parse_ttl("0s").is_err());
        assert!(parse_ttl("5y").is_err());
    }
}
