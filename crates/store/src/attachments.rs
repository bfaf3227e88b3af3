//! Attachments: the files of messages as the store records them — `ready` (held in the file
//! store), `pending` (an inbound file named by URL, still to be fetched) or `failed` (kept with
//! a note, so that nothing disappears silently).

use async_trait::async_trait;
use okno_domain::files::safe_file_name;
use okno_domain::ids::{new_id, MessageId};
use okno_domain::model::Attachment;
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};

use crate::conversations::{inbound_event, load_message, message_event_data};
use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::webhooks::emit;
use crate::{FetchedAttachment, NewAttachment};

/// Attachments: storing, reading, and recording what fetching an inbound message's files did.
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    async fn insert_attachment(&self, new: NewAttachment) -> Result<Attachment>;
    async fn get_attachment(&self, id: &str) -> Result<Attachment>;
    /// Records fetch results and emits the message's deferred inbound event.
    async fn finish_attachments(&self, message_id: &MessageId, results: Vec<FetchedAttachment>) -> Result<()>;
}

#[async_trait]
impl AttachmentStore for SqlStore {
    async fn insert_attachment(&self, new: NewAttachment) -> Result<Attachment> {
        // Whoever named the file, only a plain base name is kept (as for inbound files below).
        let name = safe_file_name(&new.name);
        on!(self.write, |c| {
            let id = new_id();
            c.exec(
                "INSERT INTO attachments (id, message_id, name, mime, size, sha256, state, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'ready', $7)",
                args![&id, &new.message_id, &name, &new.mime, new.size, &new.sha256, now_ms()],
            )
            .await?;
            load_attachment(c, &id).await
        })
    }

    async fn get_attachment(&self, id: &str) -> Result<Attachment> {
        let id = id.to_owned();
        on!(self.read, |c| {
            let id = id.as_str();
            let row = c
                .row(&format!("SELECT {ATTACHMENT_COLS} FROM attachments WHERE id = $1"), args![id])
                .await?
                .ok_or_else(|| Error::not_found("attachment", id))?;
            attachment_from(&row)
        })
    }

    async fn finish_attachments(&self, message_id: &MessageId, results: Vec<FetchedAttachment>) -> Result<()> {
        let message_id = message_id.to_owned();
        on!(self.write, |c| {
            let message_id = message_id.as_str();
            for r in results {
                match r {
                    FetchedAttachment::Stored { id, size, sha256, mime } => {
                        c.exec(
                            "UPDATE attachments SET state = 'ready', size = $1, sha256 = $2, mime = COALESCE($3, mime), note = NULL \
                             WHERE id = $4 AND message_id = $5",
                        args![size, sha256, mime, &id, message_id]).await?;
                    }
                    FetchedAttachment::Failed { id, note } => {
                        c.exec(
                            "UPDATE attachments SET state = 'failed', note = $1 WHERE id = $2 AND message_id = $3",
                            args![note, &id, message_id],
                        )
                        .await?;
                    }
                }
            }
            let m = load_message(c, message_id).await?;
            if m.attachments.iter().all(|a| a.state != "pending") {
                emit(c, inbound_event(&m), message_event_data(&m)).await?;
            }
            Ok(())
        })
    }
}

const ATTACHMENT_COLS: &str = "id, message_id, name, mime, size, sha256, state, note, source_url";

fn attachment_from(row: &Row) -> Result<Attachment> {
    let id = row.s("id")?;
    Ok(Attachment {
        url: format!("/api/v1/attachments/{id}"),
        id,
        name: row.s("name")?,
        mime: row.s("mime")?,
        size: row.i("size")?,
        sha256: row.s("sha256")?,
        state: row.s("state")?,
        note: row.os("note")?,
        source_url: row.os("source_url")?,
        message_id: row.oid("message_id")?,
    })
}

pub(crate) async fn load_attachments(c: &mut dyn Conn, message_id: &str) -> Result<Vec<Attachment>> {
    c.rows(
        &format!("SELECT {ATTACHMENT_COLS} FROM attachments WHERE message_id = $1 ORDER BY created_at, id"),
        args![message_id],
    )
    .await?
    .iter()
    .map(attachment_from)
    .collect()
}

async fn load_attachment(c: &mut dyn Conn, id: &str) -> Result<Attachment> {
    let row = c
        .row(&format!("SELECT {ATTACHMENT_COLS} FROM attachments WHERE id = $1"), args![id])
        .await?
        .ok_or_else(|| Error::not_found("attachment", id))?;
    attachment_from(&row)
}
