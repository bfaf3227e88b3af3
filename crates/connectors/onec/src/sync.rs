//! Reading only what changed in 1C since the last pull.
//!
//! 1C's standard OData interface has no change feed. Exchange plans track changes inside the
//! infobase, but their change tables are not published over OData (only the plan's nodes are),
//! and objects carry no modification time. What every object does carry is `DataVersion`: an
//! opaque string that 1C replaces on every write of the object — an edit, a deletion mark, even
//! a write that changes nothing. It is not ordered across objects (each object counts its own
//! writes), so "everything after version X" cannot be asked. It can only be compared.
//!
//! So the cursor is a digest of the last pull: for every object, its `Ref_Key` and an 8-byte
//! digest of its `DataVersion`. A pull:
//!
//! ```text
//!  1. scan   GET {Set}?$select=Ref_Key,DataVersion&$orderby=Ref_Key&$top=N&$skip=…
//!            (two short fields an object, page after page, until a short page)
//!  2. diff   key not in the cursor → new; digest differs → changed (deletion marks included);
//!            key in the cursor but not in the scan → perhaps deleted
//!  3. fetch  the new and changed objects in full: $filter=Ref_Key eq guid'…' or …
//!  4. check  the perhaps-deleted ones the same way — paging by $skip can miss an object when
//!            another is deleted during the scan — and only those 1C no longer has are Removed
//!  5. cursor the scan's keys with the versions actually read
//! ```
//!
//! A first pull (an empty cursor) reads everything; later pulls cost the scan (≈ 60 bytes an
//! object) plus the changed objects. The caller stores [`Pull::cursor`] only after handing the
//! changes on, so a crash in between repeats them rather than losing them (okno's upserts are
//! idempotent by `external_id`).
//!
//! For changes that must reach okno at once (an order posted, a payment received), 1C pushes
//! them itself from a transactional outbox — see `integrations/1c`; the pull is the reconciling
//! sweep that also catches edits made with no outbox in place.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::client::{ODataClient, ODataError, PageRequest, Query, PAGE_SIZE};
use crate::person::{FieldMap, Person};
use crate::wire::{is_guid, text};

/// The format tag a cursor's text starts with.
const CURSOR_TAG: &str = "onec-v1.";
/// Bytes per cursor entry: a GUID and a digest.
const ENTRY: usize = 16 + 8;
/// The most objects one scan reads before giving up (a runaway page loop).
const MAX_SCANNED: usize = 20_000_000;

/// What okno remembers of an entity set between pulls: every object's reference and a digest
/// of its `DataVersion`. Stored as text ([`SyncCursor::encode`]); the empty cursor reads all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncCursor {
    entries: BTreeMap<[u8; 16], [u8; 8]>,
}

/// Why a stored cursor cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a 1C sync cursor: {0}")]
pub struct CursorError(String);

impl SyncCursor {
    /// How many objects it remembers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it remembers nothing (the next pull reads everything).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether it remembers this object at this version.
    pub fn knows(&self, ref_key: &str, data_version: &str) -> bool {
        guid_bytes(ref_key).is_some_and(|k| self.entries.get(&k) == Some(&digest(data_version)))
    }

    /// The cursor as text: a tag and the entries in base64 (24 bytes an object).
    pub fn encode(&self) -> String {
        let mut raw = Vec::with_capacity(self.entries.len() * ENTRY);
        for (k, d) in &self.entries {
            raw.extend_from_slice(k);
            raw.extend_from_slice(d);
        }
        format!("{CURSOR_TAG}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw))
    }

    /// A cursor from [`SyncCursor::encode`]'s text; `""` is the empty cursor.
    pub fn decode(text: &str) -> Result<SyncCursor, CursorError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(SyncCursor::default());
        }
        let body = text.strip_prefix(CURSOR_TAG).ok_or_else(|| CursorError("no `onec-v1.` tag".into()))?;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(body)
            .map_err(|e| CursorError(format!("base64: {e}")))?;
        if raw.len() % ENTRY != 0 {
            return Err(CursorError(format!("{} bytes is no whole number of entries", raw.len())));
        }
        let mut entries = BTreeMap::new();
        for e in raw.chunks_exact(ENTRY) {
            let (k, d) = e.split_at(16);
            let (Ok(k), Ok(d)) = (<[u8; 16]>::try_from(k), <[u8; 8]>::try_from(d)) else {
                return Err(CursorError("a short entry".into()));
            };
            entries.insert(k, d);
        }
        Ok(SyncCursor { entries })
    }

    fn insert(&mut self, ref_key: &str, data_version: &str) {
        if let Some(k) = guid_bytes(ref_key) {
            self.entries.insert(k, digest(data_version));
        }
    }
}

/// 16 bytes of a GUID's hex digits; `None` for what is not a GUID.
fn guid_bytes(text: &str) -> Option<[u8; 16]> {
    if !is_guid(text) {
        return None;
    }
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    let mut out = [0u8; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        *out.get_mut(i)? = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

fn guid_text(bytes: &[u8; 16]) -> String {
    let h: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

fn digest(data_version: &str) -> [u8; 8] {
    let d = Sha256::digest(data_version.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    out
}

/// One thing that changed in 1C.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A person okno has not seen (`new`) or one written since the last pull — including a
    /// deletion mark set or cleared ([`Person::deletion_mark`]).
    Upserted { person: Person, new: bool },
    /// An object deleted for good in 1C (the administrator deleted marked objects).
    Removed { ref_key: String },
}

impl Change {
    /// The 1C reference the change is about.
    pub fn ref_key(&self) -> &str {
        match self {
            Change::Upserted { person, .. } => &person.ref_key,
            Change::Removed { ref_key } => ref_key,
        }
    }
}

/// What a pull found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pull {
    /// New and changed people in `Ref_Key` order, then the removed ones.
    pub changes: Vec<Change>,
    /// The cursor to store once the changes are handed on.
    pub cursor: SyncCursor,
    /// Objects the scan read.
    pub scanned: usize,
}

impl ODataClient {
    /// What changed in the mapped entity set since `cursor` (see the module's docs).
    pub async fn pull(&self, map: &FieldMap, cursor: &SyncCursor) -> Result<Pull, ODataError> {
        self.pull_paged(map, cursor, PAGE_SIZE).await
    }

    /// [`ODataClient::pull`] scanning `page_size` objects a call.
    pub async fn pull_paged(&self, map: &FieldMap, cursor: &SyncCursor, page_size: usize) -> Result<Pull, ODataError> {
        let page_size = page_size.clamp(1, crate::wire::MAX_PAGE);
        // 1. scan
        let mut seen: BTreeMap<String, String> = BTreeMap::new();
        let mut scanned = 0;
        for n in 0.. {
            let query = Query {
                filter: Some(map.filter.clone()),
                select: vec!["Ref_Key".into(), "DataVersion".into()],
                order_by: Some("Ref_Key".into()),
                page: Some(PageRequest::nth(n, page_size)),
            };
            let page = self.query(&map.entity_set, &query).await?;
            scanned += page.len();
            let before = seen.len();
            for r in &page {
                let key = text(r, "Ref_Key").to_ascii_lowercase();
                if is_guid(&key) {
                    seen.insert(key, text(r, "DataVersion"));
                }
            }
            if page.len() < page_size {
                break;
            }
            if seen.len() == before || scanned > MAX_SCANNED {
                return Err(ODataError::Unavailable(format!(
                    "{}: paging does not advance (page {n} adds nothing new)",
                    map.entity_set
                )));
            }
        }
        // 2. diff
        let changed: Vec<&str> = seen.iter().filter(|(k, v)| !cursor.knows(k, v)).map(|(k, _)| k.as_str()).collect();
        let vanished: Vec<String> = cursor.entries.keys().map(guid_text).filter(|k| !seen.contains_key(k)).collect();
        let known = |key: &str| guid_bytes(key).is_some_and(|k| cursor.entries.contains_key(&k));

        // 3. fetch
        let select = map.select();
        let mut changes = Vec::new();
        let mut next = SyncCursor::default();
        for (k, v) in &seen {
            next.insert(k, v);
        }
        let fetched = self.by_keys(&map.entity_set, &changed, &map.filter, &select).await?;
        let mut got: BTreeSet<String> = BTreeSet::new();
        let mut people: Vec<Person> = fetched.iter().filter_map(|r| Person::from_record(r, map)).collect();
        people.sort_by(|a, b| a.ref_key.cmp(&b.ref_key));
        for person in people {
            if !got.insert(person.ref_key.clone()) {
                continue;
            }
            next.insert(&person.ref_key, &person.data_version);
            let new = !known(&person.ref_key);
            changes.push(Change::Upserted { person, new });
        }
        let mut gone: Vec<String> = Vec::new();
        for k in changed.iter().filter(|k| !got.contains(**k)) {
            // Deleted between the scan and the fetch.
            if let Some(b) = guid_bytes(k) {
                next.entries.remove(&b);
            }
            if known(k) {
                gone.push(k.to_string());
            }
        }

        // 4. check the perhaps-deleted
        let vanished_refs: Vec<&str> = vanished.iter().map(String::as_str).collect();
        let still = self.by_keys(&map.entity_set, &vanished_refs, &map.filter, &select).await?;
        let mut present: BTreeSet<String> = BTreeSet::new();
        for person in still.iter().filter_map(|r| Person::from_record(r, map)) {
            present.insert(person.ref_key.clone());
            next.insert(&person.ref_key, &person.data_version);
            if !cursor.knows(&person.ref_key, &person.data_version) {
                changes.push(Change::Upserted { person, new: false });
            }
        }
        gone.extend(vanished.into_iter().filter(|k| !present.contains(k)));
        gone.sort();
        gone.dedup();
        changes.extend(gone.into_iter().map(|ref_key| Change::Removed { ref_key }));
        Ok(Pull { changes, cursor: next, scanned })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "a103cb54-42ee-11ec-a7a0-f10ab59a067e";

    #[test]
    fn a_cursor_remembers_versions_and_round_trips() {
        let mut c = SyncCursor::default();
        assert_eq!(SyncCursor::decode("").unwrap(), c);
        c.insert(A, "AAAAAAAAAAE=");
        c.insert(&A.to_uppercase(), "AAAAAAAAAAE=");
        c.insert("not-a-guid", "x");
        assert_eq!(c.len(), 1);
        assert!(c.knows(A, "AAAAAAAAAAE="));
        assert!(!c.knows(A, "AAAAAAAAAAI="), "another version is a change");
        let text = c.encode();
        assert!(text.starts_with("onec-v1."));
        assert_eq!(SyncCursor::decode(&text).unwrap(), c);
        assert_eq!(guid_text(&guid_bytes(A).unwrap()), A);
        for bad in ["x", "onec-v1.!!", "onec-v1.AAAA", "onec-v2.AAAA"] {
            assert!(SyncCursor::decode(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Any text: a cursor or a clear error, never a panic.
        #[test]
        fn any_text_is_a_cursor_or_refused(s in "\\PC{0,200}") {
            let _ = SyncCursor::decode(&s);
            let _ = SyncCursor::decode(&format!("onec-v1.{s}"));
        }

        /// Any set of objects and versions survives encoding.
        #[test]
        fn cursors_round_trip(objects in proptest::collection::vec((any::<[u8; 16]>(), "[A-Za-z0-9+/=]{0,16}"), 0..50)) {
            let mut c = SyncCursor::default();
            for (k, v) in &objects {
                c.insert(&guid_text(k), v);
            }
            let back = SyncCursor::decode(&c.encode()).unwrap();
            prop_assert_eq!(&back, &c);
            for (k, v) in &objects {
                let _ = back.knows(&guid_text(k), v);
            }
        }
    }
}
