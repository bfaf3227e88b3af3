//! Calls: the company's telephony in its people's history. A call is kept once per source and
//! the telephony's id for it — reported again (at its end, with the recording) it is updated,
//! never doubled — under the contact with the call's number, made when there is none.

use async_trait::async_trait;
use okno_domain::ids::{new_id, ContactId};
use okno_domain::model::{Call, CallDirection, CallStatus, ContactInput};
use okno_domain::time::{now_ms, Millis};
use okno_domain::Result;

use crate::contacts::insert_contact;
use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};

/// A call as the telephony reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewCall {
    /// The connector it came through.
    pub source: String,
    pub external_id: String,
    /// The person's number, normalised (`+` and digits).
    pub phone: String,
    /// The person's name, for a contact made for the call.
    pub name: Option<String>,
    pub direction: CallDirection,
    pub status: CallStatus,
    pub operator: Option<String>,
    pub started_at: Millis,
    pub duration: i64,
    pub recording_url: Option<String>,
}

/// Calls: recording them and reading a person's.
#[async_trait]
pub trait CallStore: Send + Sync + 'static {
    /// Keeps a call: a new one under the contact with its number (made when there is none), a
    /// known one (same source and id) updated with what the report adds. `true` when new.
    async fn record_call(&self, call: NewCall) -> Result<(Call, bool)>;
    /// A contact's calls, the newest first.
    async fn list_calls(&self, contact_id: &ContactId, limit: i64) -> Result<Vec<Call>>;
}

const CALL_COLS: &str =
    "id, source, external_id, contact_id, direction, status, phone, operator, started_at, duration, recording_url";

fn call_from(row: &Row) -> Result<Call> {
    Ok(Call {
        id: row.s("id")?,
        source: row.s("source")?,
        external_id: row.s("external_id")?,
        contact_id: ContactId::from(row.s("contact_id")?),
        direction: CallDirection::parse(&row.s("direction")?)?,
        status: CallStatus::parse(&row.s("status")?)?,
        phone: row.s("phone")?,
        operator: row.os("operator")?,
        started_at: row.i("started_at")?,
        duration: row.i("duration")?,
        recording_url: row.os("recording_url")?,
    })
}

async fn load_call(c: &mut dyn Conn, source: &str, external_id: &str) -> Result<Option<Call>> {
    c.rows(&format!("SELECT {CALL_COLS} FROM calls WHERE source = $1 AND external_id = $2"), args![source, external_id])
        .await?
        .first()
        .map(call_from)
        .transpose()
}

#[async_trait]
impl CallStore for SqlStore {
    async fn record_call(&self, call: NewCall) -> Result<(Call, bool)> {
        on!(self.write, |c| {
            let now = now_ms();
            if load_call(c, &call.source, &call.external_id).await?.is_some() {
                // A later report of the same call: what it adds (the end, the recording) kept.
                c.exec(
                    "UPDATE calls SET status = $1, duration = $2, recording_url = COALESCE($3, recording_url), \
                     operator = COALESCE($4, operator), updated_at = $5 WHERE source = $6 AND external_id = $7",
                    args![
                        call.status.as_str(),
                        call.duration,
                        &call.recording_url,
                        &call.operator,
                        now,
                        &call.source,
                        &call.external_id
                    ],
                )
                .await?;
                let kept = load_call(c, &call.source, &call.external_id).await?;
                return kept.map(|k| (k, false)).ok_or_else(|| okno_domain::Error::internal("a call vanished"));
            }
            let found = c
                .rows("SELECT id FROM contacts WHERE phone = $1 ORDER BY created_at LIMIT 1", args![&call.phone])
                .await?;
            let contact_id = match found.first() {
                Some(r) => r.s("id")?,
                None => {
                    let input =
                        ContactInput { name: call.name.clone(), phone: Some(call.phone.clone()), ..Default::default() };
                    insert_contact(c, &input).await?
                }
            };
            c.exec(
                "INSERT INTO calls (id, source, external_id, contact_id, direction, status, phone, operator, \
                 started_at, duration, recording_url, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)",
                args![
                    new_id(),
                    &call.source,
                    &call.external_id,
                    &contact_id,
                    call.direction.as_str(),
                    call.status.as_str(),
                    &call.phone,
                    &call.operator,
                    call.started_at,
                    call.duration,
                    &call.recording_url,
                    now
                ],
            )
            .await?;
            let made = load_call(c, &call.source, &call.external_id).await?;
            made.map(|k| (k, true)).ok_or_else(|| okno_domain::Error::internal("a call vanished"))
        })
    }

    async fn list_calls(&self, contact_id: &ContactId, limit: i64) -> Result<Vec<Call>> {
        let id = contact_id.to_owned();
        on!(self.read, |c| {
            c.rows(
                &format!("SELECT {CALL_COLS} FROM calls WHERE contact_id = $1 ORDER BY started_at DESC LIMIT $2"),
                args![id.as_str(), limit.clamp(1, 1000)],
            )
            .await?
            .iter()
            .map(call_from)
            .collect()
        })
    }
}
