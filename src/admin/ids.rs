//! Typed identifiers of the organisers' side (STYLE habit 5). They share the activity id's
//! alphabet (`A-Z a-z 0-9 _ -`, 1 to [`MAX_ID_LEN`] bytes), so any of them can sit in a URL
//! path, a token claim or a record key without escaping.

use std::fmt;

use serde::{Deserialize, Serialize};
use shangliang_signaling::limits::MAX_ID_LEN;

use super::error::AdminError;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// 128 random bits as 32 lowercase hex digits, after `prefix`.
fn random_with(prefix: &str) -> String {
    let bytes: [u8; 16] = rand::random();
    format!("{prefix}{}", hex::encode(bytes))
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(try_from = "String", into = "String")]
        #[schema(value_type = String)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps an identifier.
            pub fn new(s: &str) -> Result<Self, AdminError> {
                if valid_id(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(AdminError::invalid(
                        $field,
                        format!("an id is 1 to {MAX_ID_LEN} characters of A-Z a-z 0-9 _ -"),
                    ))
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = AdminError;
            fn try_from(s: String) -> Result<Self, AdminError> {
                Self::new(&s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.0)
            }
        }
    };
}

string_id!(
    /// A committee (政协 body) at one level, e.g. `sn` for the province, `sn-xa` for a city,
    /// `sn-xa-lt` for a county. Chosen by whoever creates it; stable, as it is in tokens.
    CommitteeId,
    "committee"
);

string_id!(
    /// A staff account (organiser or moderator). Random (`u-` + 32 hex) so it never reveals
    /// the user name; the user name can change, this cannot.
    UserId,
    "user"
);

string_id!(
    /// A person invited to activities: a member (委员) with the platform's member id, or a
    /// guest (`g-` + 32 hex when the organiser has no id for them). It becomes the participant
    /// token's subject, so attendance is counted by person, not by token or device.
    PersonId,
    "person"
);

string_id!(
    /// One invitation (one person, one activity). Random (`i-` + 32 hex): it is the `jti` of
    /// the signed link and the key of the revocation list.
    InvitationId,
    "invitation"
);

impl UserId {
    /// A fresh random user id.
    pub fn random() -> Self {
        Self(random_with("u-"))
    }
}

impl PersonId {
    /// A fresh id for a guest the organisers know only by name.
    pub fn random_guest() -> Self {
        Self(random_with("g-"))
    }
}

impl InvitationId {
    /// A fresh random invitation id.
    pub fn random() -> Self {
        Self(random_with("i-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_characters_outside_the_url_safe_alphabet() {
        assert!(CommitteeId::new("sn-xa_01").is_ok());
        for bad in ["", "西安", "a b", "a/b", &"x".repeat(MAX_ID_LEN + 1)] {
            assert_eq!(CommitteeId::new(bad).unwrap_err().code(), "invalid", "{bad:?}");
        }
        let back: PersonId = serde_json::from_str("\"m-1001\"").unwrap();
        assert_eq!(back.as_str(), "m-1001");
        assert!(serde_json::from_str::<PersonId>("\"m 1001\"").is_err());
    }

    #[test]
    fn random_ids_are_valid_and_distinct() {
        let (a, b) = (InvitationId::random(), InvitationId::random());
        assert_ne!(a, b);
        assert!(InvitationId::new(a.as_str()).is_ok());
        assert!(UserId::random().as_str().starts_with("u-"));
        assert!(PersonId::random_guest().as_str().starts_with("g-"));
    }
}
