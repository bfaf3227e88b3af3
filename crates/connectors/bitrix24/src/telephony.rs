//! Call records of the portal's telephony (`voximplant.statistic.get`), 50 a page.

use serde_json::{json, Map, Value};

use crate::client::{B24Client, B24Error};
use crate::crm::Page;
use crate::wire::{int_at, text_at};

/// What kind of call (`CALL_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallType {
    Outgoing,
    Incoming,
    IncomingRedirected,
    Callback,
    Informational,
    Other(i64),
}

impl CallType {
    pub fn from_code(code: i64) -> CallType {
        match code {
            1 => CallType::Outgoing,
            2 => CallType::Incoming,
            3 => CallType::IncomingRedirected,
            4 => CallType::Callback,
            5 => CallType::Informational,
            n => CallType::Other(n),
        }
    }
}

/// A call record.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    pub id: i64,
    pub call_id: Option<String>,
    pub call_type: CallType,
    /// The employee.
    pub portal_user_id: Option<i64>,
    /// The line and the other party's number.
    pub portal_number: Option<String>,
    pub phone_number: Option<String>,
    /// When it started (ISO 8601 with the portal's offset) and for how long (s).
    pub start_date: Option<String>,
    pub duration: i64,
    /// `200` answered, `304` missed, `603` declined, …
    pub failed_code: Option<String>,
    /// The recording: an address, or a file of the portal's drive.
    pub record_url: Option<String>,
    pub record_file_id: Option<i64>,
    /// `CONTACT`, `COMPANY` or `LEAD`, and its id.
    pub crm_entity_type: Option<String>,
    pub crm_entity_id: Option<i64>,
    pub crm_activity_id: Option<i64>,
    pub fields: Map<String, Value>,
}

impl CallRecord {
    pub(crate) fn read(v: &Value) -> Result<CallRecord, B24Error> {
        Ok(CallRecord {
            id: int_at(v, "ID").ok_or_else(|| B24Error::Unavailable("a call record without ID".into()))?,
            call_id: text_at(v, "CALL_ID"),
            call_type: CallType::from_code(int_at(v, "CALL_TYPE").unwrap_or(0)),
            portal_user_id: int_at(v, "PORTAL_USER_ID"),
            portal_number: text_at(v, "PORTAL_NUMBER"),
            phone_number: text_at(v, "PHONE_NUMBER"),
            start_date: text_at(v, "CALL_START_DATE"),
            duration: int_at(v, "CALL_DURATION").unwrap_or(0),
            failed_code: text_at(v, "CALL_FAILED_CODE"),
            record_url: text_at(v, "CALL_RECORD_URL"),
            record_file_id: int_at(v, "RECORD_FILE_ID"),
            crm_entity_type: text_at(v, "CRM_ENTITY_TYPE"),
            crm_entity_id: int_at(v, "CRM_ENTITY_ID"),
            crm_activity_id: int_at(v, "CRM_ACTIVITY_ID"),
            fields: v.as_object().cloned().unwrap_or_default(),
        })
    }

    /// Whether the call was answered.
    pub fn answered(&self) -> bool {
        self.failed_code.as_deref() == Some("200")
    }
}

impl B24Client {
    /// A page of call records matching `filter` (`{">CALL_START_DATE": "…"}`), oldest first,
    /// from `start`.
    pub async fn calls(&self, filter: Value, start: u64) -> Result<Page<CallRecord>, B24Error> {
        let params = json!({"FILTER": filter, "SORT": "CALL_START_DATE", "ORDER": "ASC", "start": start});
        let r = self.call("voximplant.statistic.get", params).await?;
        let rows = match &r.result {
            Value::Array(a) => a.iter().map(CallRecord::read).collect::<Result<Vec<_>, _>>()?,
            other => return Err(B24Error::Unavailable(format!("call records answered {other}"))),
        };
        Ok(Page { items: rows, next: r.next, total: r.total })
    }
}
