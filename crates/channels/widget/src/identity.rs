//! Who a visitor is, and how each claim is proved.
//!
//! - **A visitor token**: random, made by okno at the first visit, kept in the browser's
//!   `localStorage`. Whoever holds it is that visitor. okno names the visitor by a digest of
//!   it ([`visitor_id`]), so the token itself is never stored.
//! - **A logged-in customer**: the company's site signs its own customer id with the channel's
//!   secret, `hash = hex(HMAC-SHA256(secret, id))`; okno checks it in constant time
//!   ([`verify_customer`]) before it links the visitor to that contact.
//! - **A file the visitor uploaded**: okno hands back a reference signed for that visitor
//!   ([`file_ref`]), so a visitor can send only files they uploaded.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Longest customer id a site may pass.
pub const MAX_CUSTOMER_ID: usize = 200;

fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    // HMAC takes keys of any length: construction cannot fail.
    let mut m = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

/// The hash a site computes for its customer `id`: lowercase hex HMAC-SHA256 keyed with the
/// channel's secret (the secret's text as it is configured).
pub fn customer_hash(secret: &str, id: &str) -> String {
    hex::encode(mac(secret, &[id.as_bytes()]))
}

/// Whether `hash` is the channel's signature of customer `id` (hex, either case), compared in
/// constant time.
pub fn verify_customer(secret: &str, id: &str, hash: &str) -> bool {
    let Ok(given) = hex::decode(hash.trim()) else { return false };
    let expected = mac(secret, &[id.as_bytes()]);
    given.len() == expected.len() && bool::from(given.ct_eq(&expected))
}

/// A new visitor token: 32 random hex characters.
pub fn new_token() -> String {
    okno_domain::ids::random_hex(16)
}

/// Whether `token` looks like one okno made (32 to 64 hex characters): anything else is
/// refused before it is used.
pub fn valid_token(token: &str) -> bool {
    (32..=64).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The visitor's id on the channel (the identity's `user_id` and `chat_id`): `w` and the
/// first 32 hex characters of the token's SHA-256.
pub fn visitor_id(token: &str) -> String {
    let digest = hex::encode(Sha256::digest(token.as_bytes()));
    format!("w{}", &digest[..32])
}

/// Whether `id` is a visitor id as [`visitor_id`] makes them.
pub fn valid_visitor_id(id: &str) -> bool {
    id.len() == 33 && id.starts_with('w') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// A reference to a file `visitor` uploaded (its content's SHA-256), signed for them:
/// `<sha256>.<signature>`.
pub fn file_ref(secret: &str, visitor: &str, sha256: &str) -> String {
    let sig = hex::encode(&mac(secret, &[b"file:", visitor.as_bytes(), b":", sha256.as_bytes()])[..12]);
    format!("{sha256}.{sig}")
}

/// The file a reference names, when it was made for `visitor` with this secret.
pub fn check_file_ref(secret: &str, visitor: &str, reference: &str) -> Option<String> {
    let (sha, _) = reference.split_once('.')?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let expected = file_ref(secret, visitor, sha);
    (expected.len() == reference.len() && bool::from(expected.as_bytes().ct_eq(reference.as_bytes())))
        .then(|| sha.to_string())
}

/// The signature okno's visitor API puts on what it hands to the channel
/// (`X-Okno-Widget-Signature`), so a request made to the channel's hook address by anyone else
/// is refused.
pub fn envelope_signature(secret: &str, body: &[u8]) -> String {
    hex::encode(mac(secret, &[b"envelope:", body]))
}

/// Checks an envelope's signature in constant time.
pub fn verify_envelope(secret: &str, body: &[u8], signature: &str) -> bool {
    let expected = envelope_signature(secret, body);
    expected.len() == signature.len() && bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_customer_hash_is_hmac_sha256_in_hex() {
        // Computed independently: printf 'cust-42' | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
        let h = customer_hash(SECRET, "cust-42");
        assert_eq!(h, "f48c271cd2bc3561557f2b63a8f3e3f9040771ef8e76de411b3edbd342653221");
        assert!(verify_customer(SECRET, "cust-42", &h));
        assert!(verify_customer(SECRET, "cust-42", &h.to_ascii_uppercase()), "hex in either case");
        assert!(!verify_customer(SECRET, "cust-43", &h), "another id");
        assert!(!verify_customer("ffffffffffffffffffffffffffffffff", "cust-42", &h), "another secret");
        assert!(!verify_customer(SECRET, "cust-42", &h[..62]), "a shortened hash");
        assert!(!verify_customer(SECRET, "cust-42", ""), "no hash");
        assert!(!verify_customer(SECRET, "cust-42", "not hex"), "garbage");
    }

    #[test]
    fn visitor_ids_come_from_tokens() {
        let t = new_token();
        assert!(valid_token(&t));
        assert!(!valid_token("short") && !valid_token(&"g".repeat(32)) && !valid_token(&"a".repeat(65)));
        let id = visitor_id(&t);
        assert!(valid_visitor_id(&id), "{id}");
        assert_eq!(id, visitor_id(&t), "the same token, the same visitor");
        assert_ne!(id, visitor_id(&new_token()));
        assert!(!id.contains(&t), "the token is not readable from the id");
    }

    #[test]
    fn file_references_are_the_uploaders_own() {
        let sha = "a".repeat(64);
        let r = file_ref(SECRET, "wvisitor1", &sha);
        assert_eq!(check_file_ref(SECRET, "wvisitor1", &r), Some(sha.clone()));
        assert_eq!(check_file_ref(SECRET, "wvisitor2", &r), None, "another visitor");
        assert_eq!(check_file_ref(SECRET, "wvisitor1", &format!("{sha}.00")), None);
        assert_eq!(check_file_ref(SECRET, "wvisitor1", "../../etc/passwd.x"), None);
    }

    #[test]
    fn envelopes_are_signed_by_okno() {
        let s = envelope_signature(SECRET, b"{}");
        assert!(verify_envelope(SECRET, b"{}", &s));
        assert!(!verify_envelope(SECRET, b"{ }", &s));
        assert!(!verify_envelope(SECRET, b"{}", ""));
    }
}
