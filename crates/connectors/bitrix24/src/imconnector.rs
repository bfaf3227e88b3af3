//! okno as an Open Lines connector (`imconnector.*`; an application's context only — a
//! webhook gets 403 `WRONG_AUTH_TYPE`).
//!
//! ```text
//! register ─► activate on a line ─► status
//! a customer writes in a messenger ─► send.messages ─► the Open Lines chat (session, CHAT_ID)
//! an operator answers ─► ONIMCONNECTORMESSAGEADD to okno (see `event`) ─► okno delivers it
//!   ─► send.status.delivery (im.chat_id, im.message_id, message.id[]) ─► later send.status.reading
//! ```

use serde_json::{json, Value};

use crate::client::{B24Client, B24Error, Refusal};
use crate::wire::{flag, int, int_at, items, text, text_at};

/// What `imconnector.register` is told about okno's connector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorRegistration {
    /// Lowercase `[a-z0-9_]`, no dots.
    pub id: String,
    pub name: String,
    /// The icon as a data URI (`data:image/svg+xml,…`).
    pub icon: String,
    /// The settings page the portal opens for the connector.
    pub placement_handler: String,
    /// Chats keyed by the external chat (`true`) instead of by the external user, which also
    /// turns the CRM tracker off.
    pub chat_group: bool,
}

/// `imconnector.status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorStatus {
    pub line: i64,
    pub connector: String,
    pub error: bool,
    pub configured: bool,
    pub active: bool,
}

/// A customer's message okno passes to the portal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomerMessage {
    /// The customer in okno (`user.id`), with what okno knows of them.
    pub user_id: String,
    pub name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    /// The message in okno (`message.id`), its time (unix seconds), text and files.
    pub message_id: String,
    pub date: i64,
    pub text: String,
    pub files: Vec<FileLink>,
    /// The conversation in okno (`chat.id`), and how it is shown.
    pub chat_id: String,
    pub chat_name: Option<String>,
    pub chat_url: Option<String>,
}

/// A file by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLink {
    pub url: String,
    pub name: String,
}

impl CustomerMessage {
    fn to_json(&self) -> Value {
        let mut user = json!({ "id": self.user_id });
        for (k, v) in
            [("name", &self.name), ("last_name", &self.last_name), ("phone", &self.phone), ("email", &self.email)]
        {
            if let Some(v) = v {
                user[k] = json!(v);
            }
        }
        if self.phone.is_some() {
            user["skip_phone_validate"] = json!("Y");
        }
        let mut message = json!({"id": self.message_id, "date": self.date, "text": self.text});
        if !self.files.is_empty() {
            message["files"] = self.files.iter().map(|f| json!({"url": f.url, "name": f.name})).collect();
        }
        let mut chat = json!({ "id": self.chat_id });
        if let Some(n) = &self.chat_name {
            chat["name"] = json!(n);
        }
        if let Some(u) = &self.chat_url {
            chat["url"] = json!(u);
        }
        json!({"user": user, "message": message, "chat": chat})
    }
}

/// What the portal made of one customer message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub success: bool,
    /// okno's message id, echoed.
    pub message_id: Option<String>,
    /// The customer's user on the portal.
    pub portal_user: Option<i64>,
    /// The Open Lines session and chat the message went to.
    pub session_id: Option<i64>,
    pub chat_id: Option<i64>,
}

/// A delivery or reading receipt for an operator's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The portal's ids, from `ONIMCONNECTORMESSAGEADD` (`im.chat_id`, `im.message_id`).
    pub chat_id: i64,
    pub message_id: i64,
    /// okno's ids of the message and the conversation.
    pub external_ids: Vec<String>,
    pub external_chat: String,
    /// When it was delivered (unix seconds; delivery receipts only).
    pub date: Option<i64>,
}

impl Receipt {
    fn to_json(&self) -> Value {
        let mut message = json!({ "id": self.external_ids });
        if let Some(d) = self.date {
            message["date"] = json!(d);
        }
        json!({"im": {"chat_id": self.chat_id, "message_id": self.message_id}, "message": message,
               "chat": {"id": self.external_chat}})
    }
}

impl B24Client {
    /// Registers okno's connector (the same id again updates it).
    pub async fn register_connector(&self, r: &ConnectorRegistration) -> Result<(), B24Error> {
        let params = json!({
            "ID": r.id, "NAME": r.name,
            "ICON": {"DATA_IMAGE": r.icon, "COLOR": "#1f6feb", "SIZE": "90%", "POSITION": "center"},
            "PLACEMENT_HANDLER": r.placement_handler,
            "DEL_EXTERNAL_MESSAGES": false, "EDIT_INTERNAL_MESSAGES": false, "DEL_INTERNAL_MESSAGES": false,
            "NEWSLETTER": true, "NEED_SYSTEM_MESSAGES": false, "NEED_SIGNATURE": true, "CHAT_GROUP": r.chat_group,
        });
        let reply = self.call("imconnector.register", params).await?;
        // A refusal comes as 200 with `{"result":{"result":false,"error",…}}`.
        if reply.result.get("result").is_some_and(flag) {
            return Ok(());
        }
        Err(B24Error::Invalid(Refusal {
            code: reply.result.get("error").and_then(text).unwrap_or_default(),
            description: reply
                .result
                .get("error_description")
                .and_then(text)
                .unwrap_or_else(|| "not registered".into()),
        }))
    }

    /// Turns the connector on (or off) for an open line.
    pub async fn activate_connector(&self, connector: &str, line: i64, active: bool) -> Result<(), B24Error> {
        let params = json!({"CONNECTOR": connector, "LINE": line, "ACTIVE": if active { "1" } else { "0" }});
        self.call("imconnector.activate", params).await.map(|_| ())
    }

    /// Tells the portal how okno's side of the line is shown (`imconnector.connector.data.set`).
    pub async fn set_connector_data(
        &self,
        connector: &str,
        line: i64,
        id: &str,
        name: &str,
        url: &str,
    ) -> Result<(), B24Error> {
        let params = json!({"CONNECTOR": connector, "LINE": line, "DATA": {"ID": id, "NAME": name, "URL": url}});
        self.call("imconnector.connector.data.set", params).await.map(|_| ())
    }

    /// Whether the connector works on the line.
    pub async fn connector_status(&self, connector: &str, line: i64) -> Result<ConnectorStatus, B24Error> {
        let r = self.call("imconnector.status", json!({"CONNECTOR": connector, "LINE": line})).await?.result;
        Ok(ConnectorStatus {
            line: int_at(&r, "LINE").unwrap_or(line),
            connector: text_at(&r, "CONNECTOR").unwrap_or_else(|| connector.to_string()),
            error: r.get("ERROR").is_some_and(flag),
            configured: r.get("CONFIGURED").is_some_and(flag),
            active: r.get("STATUS").is_some_and(flag),
        })
    }

    /// Passes customers' messages to the line; one answer per message, in order.
    pub async fn send_messages(
        &self,
        connector: &str,
        line: i64,
        messages: &[CustomerMessage],
    ) -> Result<Vec<Accepted>, B24Error> {
        let list: Vec<Value> = messages.iter().map(CustomerMessage::to_json).collect();
        let r = self
            .call("imconnector.send.messages", json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": list}))
            .await?;
        let results = r.result.pointer("/DATA/RESULT").map(items).unwrap_or_default();
        Ok(results
            .into_iter()
            .map(|m| Accepted {
                success: m.get("SUCCESS").is_some_and(flag),
                message_id: m.pointer("/message/id").and_then(text),
                portal_user: m.get("user").and_then(int),
                session_id: m.pointer("/session/ID").and_then(int),
                chat_id: m.pointer("/session/CHAT_ID").and_then(int),
            })
            .collect())
    }

    /// Reports operators' messages delivered to the customers.
    pub async fn send_delivery_status(&self, connector: &str, line: i64, receipts: &[Receipt]) -> Result<(), B24Error> {
        let list: Vec<Value> = receipts.iter().map(Receipt::to_json).collect();
        let params = json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": list});
        self.call("imconnector.send.status.delivery", params).await.map(|_| ())
    }

    /// Reports operators' messages read by the customers.
    pub async fn send_reading_status(&self, connector: &str, line: i64, receipts: &[Receipt]) -> Result<(), B24Error> {
        let list: Vec<Value> = receipts.iter().map(Receipt::to_json).collect();
        let params = json!({"CONNECTOR": connector, "LINE": line, "MESSAGES": list});
        self.call("imconnector.send.status.reading", params).await.map(|_| ())
    }
}
