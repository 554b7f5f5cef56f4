//! Signed tokens of the organisers' side: invitation links and staff sessions.
//!
//! They reuse the hub's signing scheme (JWT, HS256, `jsonwebtoken`, the 32-byte secret in
//! `<data-dir>/secret.key` that `server::auth::TokenKeys` loads) but never its key: each purpose
//! signs with its own key derived from the hub secret,
//! `HMAC-SHA256(key = hub secret, message = "shangliang/<purpose>/v1")`, and carries the purpose
//! as its audience (`aud`). So an invitation link can never pass as a participant token (nor a
//! staff session as either), even though all three are JWTs from one secret; every node of a
//! cluster derives the same keys from the secret it already shares; no new key file.
//!
//! Why HS256 rather than Ed25519: the hub is both the only minter and the only verifier of
//! these tokens, so a public-key scheme buys nothing today, and a 43-character HMAC signature
//! keeps invitation links short (they travel in SMS and WeChat messages). Ed25519 becomes the
//! better choice the day a party that must not mint (a separate portal, a CDN edge) verifies
//! them; the purpose-key seam here is where it would go.
//!
//! Expiry is checked here against the caller's `now_ms` (jsonwebtoken's own clock check is off),
//! so the rules are testable without sleeping.

use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::Sha256;

use super::access::{Staff, StaffRole};
use super::error::AdminError;
use super::ids::{CommitteeId, UserId};

/// Why a token was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SignError {
    /// Forged, malformed, another purpose's, too long.
    Invalid,
    /// Signed and well-formed, past `exp`.
    Expired,
}

/// An HS256 key for one purpose.
#[derive(Clone)]
pub(crate) struct PurposeKey {
    purpose: &'static str,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

/// Tokens carry this much at most (the hub's limit for any token).
const MAX_TOKEN_LEN: usize = shangliang_signaling::limits::MAX_TOKEN_LEN;

impl PurposeKey {
    pub(crate) fn derive(hub_secret: &[u8], purpose: &'static str) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(hub_secret).expect("HMAC takes any key length");
        mac.update(format!("shangliang/{purpose}/v1").as_bytes());
        let key = mac.finalize().into_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false; // checked against now_ms in `verify`
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.set_audience(&[purpose]);
        PurposeKey {
            purpose,
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            validation,
        }
    }

    pub(crate) fn purpose(&self) -> &'static str {
        self.purpose
    }

    pub(crate) fn mint<T: Serialize>(&self, claims: &T) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Checks signature, purpose and `exp` (Unix seconds) against `now_ms`.
    pub(crate) fn verify<T: DeserializeOwned + Expiring>(&self, token: &str, now_ms: u64) -> Result<T, SignError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(SignError::Invalid);
        }
        let claims = jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .map_err(|_| SignError::Invalid)?
            .claims;
        if now_ms / 1000 >= claims.exp_s() {
            return Err(SignError::Expired);
        }
        Ok(claims)
    }
}

/// Claims with an expiry in Unix seconds.
pub(crate) trait Expiring {
    fn exp_s(&self) -> u64;
}

/// How long a staff session lasts by default: a working day.
pub const STAFF_SESSION_SECS: u64 = 10 * 3600;

/// The claims of a staff session token (`aud` = `staff`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StaffClaims {
    /// The account.
    pub sub: UserId,
    /// Display name.
    pub name: String,
    /// Committee.
    pub committee: CommitteeId,
    /// Role.
    pub role: StaffRole,
    /// Purpose, always `staff`.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expiry, Unix seconds.
    pub exp: u64,
}

impl Expiring for StaffClaims {
    fn exp_s(&self) -> u64 {
        self.exp
    }
}

/// Mints and checks staff session tokens.
#[derive(Clone)]
pub struct StaffTokens {
    key: PurposeKey,
}

impl StaffTokens {
    /// Keys derived from the hub secret.
    pub fn from_hub_secret(secret: &[u8]) -> Self {
        StaffTokens { key: PurposeKey::derive(secret, "staff") }
    }

    /// A session token for `staff`, good for `ttl_s` seconds from `now_ms`.
    pub fn mint(&self, staff: &Staff, ttl_s: u64, now_ms: u64) -> String {
        let iat = now_ms / 1000;
        self.key.mint(&StaffClaims {
            sub: staff.user.clone(),
            name: staff.name.clone(),
            committee: staff.committee.clone(),
            role: staff.role,
            aud: self.key.purpose().to_owned(),
            iat,
            exp: iat + ttl_s,
        })
    }

    /// The staff member a session token is for. The REST edge also checks, per request, that
    /// the account is still enabled (a disabled account's tokens stop working at once).
    pub fn verify(&self, token: &str, now_ms: u64) -> Result<Staff, AdminError> {
        match self.key.verify::<StaffClaims>(token, now_ms) {
            Ok(c) => Ok(Staff { user: c.sub, name: c.name, committee: c.committee, role: c.role }),
            Err(SignError::Invalid) => Err(AdminError::Unauthenticated("invalid session token".into())),
            Err(SignError::Expired) => Err(AdminError::Unauthenticated("session expired".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn staff() -> Staff {
        Staff {
            user: UserId::new("u-1").unwrap(),
            name: "张主任".into(),
            committee: CommitteeId::new("sn").unwrap(),
            role: StaffRole::Organiser,
        }
    }

    #[test]
    fn a_staff_session_verifies_until_it_expires() {
        let t = StaffTokens::from_hub_secret(SECRET);
        let tok = t.mint(&staff(), 60, 1_000_000);
        assert_eq!(t.verify(&tok, 1_000_000).unwrap(), staff());
        assert_eq!(t.verify(&tok, 1_059_999).unwrap(), staff());
        assert_eq!(t.verify(&tok, 1_060_000).unwrap_err().code(), "unauthenticated");
    }

    #[test]
    fn a_token_of_another_secret_or_purpose_is_refused() {
        let t = StaffTokens::from_hub_secret(SECRET);
        let other = StaffTokens::from_hub_secret(b"another secret, another secret!!");
        assert!(t.verify(&other.mint(&staff(), 60, 0), 0).is_err());
        // Same secret, another purpose's key: refused although the claims would parse.
        let k = PurposeKey::derive(SECRET, "invitation");
        let forged = k.mint(&StaffClaims {
            sub: UserId::new("u-1").unwrap(),
            name: "x".into(),
            committee: CommitteeId::new("sn").unwrap(),
            role: StaffRole::Organiser,
            aud: "staff".into(),
            iat: 0,
            exp: 10,
        });
        assert!(t.verify(&forged, 0).is_err());
        // The raw hub secret (what participant tokens use) does not sign staff sessions either.
        let raw = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &serde_json::json!({"sub":"u-1","name":"x","committee":"sn","role":"organiser","aud":"staff","iat":0,"exp":10}),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(t.verify(&raw, 0).is_err());
        assert!(t.verify("garbage", 0).is_err());
    }
}
