//! okno's 1C:Enterprise connector: the parts that speak 1C.
//!
//! - [`client`]: the infobase's standard OData interface (`…/odata/standard.odata`) — Basic
//!   auth, `$format=json`, Cyrillic entity sets, `$filter`/`$select`/`$orderby`, pages by
//!   `$top`/`$skip`, 1C's errors told apart;
//! - [`person`]: counterparties and employees read as people — the name, the code, phones and
//!   e-mails from the contact-information tabular part — through a configurable [`FieldMap`];
//! - [`sync`]: the incremental pull — a cursor of `Ref_Key → DataVersion` digests, so a pull
//!   hands on only the new, changed, marked-for-deletion and deleted objects;
//! - [`wire`]: 1C's query strings, JSON pages and `odata.error` bodies.
//!
//! Its counterpart in tests is the OData part of `okno-onec-sim` (`crates/onec-sim`); the 1C
//! side of the integration (the outbox, the scheduled job, the HTTP service) is the kit in
//! `integrations/1c`.

pub mod client;
pub mod person;
pub mod sync;
pub mod wire;

pub use client::{ODataClient, ODataError, PageRequest, Query, KEYS_PER_CALL, PAGE_SIZE};
pub use person::{normalize_email, normalize_phone, FieldMap, Person};
pub use sync::{Change, CursorError, Pull, SyncCursor};
pub use wire::{quote, Record};
