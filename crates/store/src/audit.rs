//! The audit log: who changed what, when. A change's line is written in the change's own
//! transaction ([`write_audit`]), so the log holds every change that was made and no other.

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::{AuditEntry, Page};
use okno_domain::time::now_ms;
use okno_domain::Result;

use crate::db::{args, Conn};
use crate::sql::{on, SqlStore};
use crate::statements::{split_page, to_json, Sql};
use crate::{NewAudit, PageRequest};

/// The audit log: appending a line, reading it newest first.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn audit(&self, entry: NewAudit) -> Result<()>;
    async fn list_audit(&self, page: PageRequest) -> Result<Page<AuditEntry>>;
}

#[async_trait]
impl AuditStore for SqlStore {
    async fn audit(&self, e: NewAudit) -> Result<()> {
        on!(self.write, |c| write_audit(c, Some(&e)).await)
    }

    async fn list_audit(&self, page: PageRequest) -> Result<Page<AuditEntry>> {
        on!(self.read, |c| {
            let mut q = Sql::new("SELECT id, at, actor, action, target, detail FROM audit_log WHERE 1 = 1");
            if let Some(c) = &page.cursor {
                q.push(" AND id < ").bind_s(c);
            }
            q.push(" ORDER BY id DESC LIMIT ").bind_i(i64::from(page.limit) + 1);
            let items = c
                .rows(&q.text, &q.args)
                .await?
                .iter()
                .map(|r| {
                    Ok(AuditEntry {
                        id: r.s("id")?,
                        at: r.i("at")?,
                        actor: r.s("actor")?,
                        action: r.s("action")?,
                        target: r.s("target")?,
                        detail: r.js("detail")?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (items, next) = split_page(items, page.limit, |a| a.id.clone());
            Ok(Page { items, next })
        })
    }
}

/// Writes an audit line, if there is one, inside the caller's transaction: the line of a
/// change is committed with the change or not at all.
pub(crate) async fn write_audit(c: &mut dyn Conn, entry: Option<&NewAudit>) -> Result<()> {
    if let Some(e) = entry {
        c.exec(
            "INSERT INTO audit_log (id, at, actor, action, target, detail) VALUES ($1, $2, $3, $4, $5, $6)",
            args![new_id(), now_ms(), &e.actor, &e.action, &e.target, to_json(&e.detail)],
        )
        .await?;
    }
    Ok(())
}
