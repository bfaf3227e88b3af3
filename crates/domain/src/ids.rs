//! Identifiers and secrets. Ids are UUIDv7 strings: unique across processes and sortable by
//! creation time, which keyset pagination relies on.

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
