//! Identifiers and secrets. Ids are UUIDv7 strings: unique across processes and sortable by
//! creation time, which keyset pagination relies on.
//!
//! The ids of the main aggregates are types of their own ([`ContactId`], [`ConversationId`],
//! [`MessageId`], [`ChannelId`], [`IdentityId`]), so that a conversation's id cannot be passed
//! where a contact's is expected. Each is a string underneath and nothing more: it serializes
//! as that string (the API's JSON and OpenAPI document are unchanged), is stored as that text,
//! and compares with a `&str`.

use rand::RngCore;

/// A new, time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// `n` random bytes as lowercase hex, for secrets and one-time codes.
pub fn random_hex(n: usize) -> String {
    let mut buf = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

/// Declares a string id type: `Display`, `as_str`, conversions from and to strings, equality
/// with `str`, serde as a plain string, and an OpenAPI schema of a plain string.
macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        #[allow(clippy::new_without_default)] // a default id would be a made-up one
        impl $name {
            /// A new, time-ordered id ([`new_id`]).
            pub fn new() -> Self {
                Self(new_id())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&String> for $name {
            fn from(s: &String) -> Self {
                Self(s.clone())
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl From<&$name> for String {
            fn from(id: &$name) -> String {
                id.0.clone()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $name {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$name> for str {
            fn eq(&self, other: &$name) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$name> for &str {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$name> for String {
            fn eq(&self, other: &$name) -> bool {
                *self == other.0
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                <String as utoipa::PartialSchema>::schema()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

string_id!(
    /// A contact's id.
    ContactId
);
string_id!(
    /// A contact's identity's (its address on one channel) id.
    IdentityId
);
string_id!(
    /// A conversation's id.
    ConversationId
);
string_id!(
    /// A message's id.
    MessageId
);
string_id!(
    /// A channel's id.
    ChannelId
);
string_id!(
    /// A connector's (to a business system) id.
    ConnectorId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_plain_strings_in_json() {
        let id = ConversationId::from("0190abc");
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"0190abc\"");
        let back: ConversationId = serde_json::from_str("\"0190abc\"").unwrap();
        assert_eq!(back, id);
        assert_eq!(back, "0190abc");
        assert_eq!(back.to_string(), "0190abc");
        let opt: Option<ContactId> = serde_json::from_value(serde_json::json!(null)).unwrap();
        assert_eq!(opt, None);
    }

    #[test]
    fn new_ids_are_time_ordered_uuids() {
        let a = MessageId::new();
        let b = MessageId::new();
        assert_eq!(a.as_str().len(), 32);
        assert!(a < b);
    }

    #[test]
    fn ids_look_up_by_str() {
        let mut set = std::collections::HashSet::new();
        set.insert(ChannelId::from("c1"));
        assert!(set.contains("c1"));
    }
}
