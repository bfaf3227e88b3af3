//! Operators who sign in through an LDAP directory or Active Directory.
//!
//! Such an operator is an ordinary row of `operators` with the DN of their directory entry
//! (`directory_dn`): sessions, roles and the audit work as for anyone. The directory decides
//! who they are and which role they have; okno keeps the account so that conversations,
//! tasks and the audit can name them. A local account (no DN) is never turned into a directory
//! one, nor the other way round.

use async_trait::async_trait;
use okno_domain::model::{Operator, Role};
use okno_domain::time::now_ms;
use okno_domain::{Error, ErrorKind, Result};
use serde_json::json;

use crate::db::{args, Conn};
use crate::operators::{operator_from, OperatorAccount};
use crate::sql::{on, SqlStore};

/// A directory operator with sessions open, as the periodic re-check sees them.
#[derive(Debug, Clone)]
pub struct DirectoryOperator {
    pub operator: Operator,
    /// Their directory entry.
    pub dn: String,
}

/// What the directory said at a sign-in, for [`DirectoryStore::sign_in_from_directory`].
#[derive(Debug, Clone)]
pub struct DirectorySignIn {
    /// The login as the directory spells it.
    pub login: String,
    pub dn: String,
    pub role: Role,
    /// The argon2 hash of a random secret, for a new account (its password is never checked).
    pub unusable_password_hash: String,
}

/// Operators' directory links.
#[async_trait]
pub trait DirectoryStore: Send + Sync + 'static {
    /// The directory entry of the operator `login`, when that operator signs in through the
    /// directory (`None`: a local account, or no such operator).
    async fn operator_directory_dn(&self, login: &str) -> Result<Option<String>>;
    /// Records a sign-in the directory accepted, in one transaction with its audit lines: a new
    /// operator is created with the role, a known one gets the role and DN the directory gives
    /// now, and one okno disabled because the directory refused them earlier is enabled again.
    /// A local operator of that login is a conflict (`local_account`): the directory never
    /// takes over a local account.
    async fn sign_in_from_directory(&self, s: DirectorySignIn) -> Result<OperatorAccount>;
    /// Enabled directory operators with a session open now.
    async fn directory_operators_signed_in(&self) -> Result<Vec<DirectoryOperator>>;
    /// The directory no longer lets this operator in (`reason`): ends every session of theirs
    /// and disables the account, marked as done for the directory, with an audit line.
    async fn directory_refused(&self, operator_id: &str, reason: &str) -> Result<()>;
    /// The directory gives this operator another role now: changes it, with an audit line.
    async fn directory_role(&self, operator_id: &str, role: Role) -> Result<()>;
}

use crate::operators::OPERATOR_COLS as COLS;

/// The directory's audit line, in the change's transaction ([`crate::audit::write_audit`]).
async fn audit(c: &mut dyn Conn, action: &str, target: &str, detail: serde_json::Value) -> Result<()> {
    let entry = crate::NewAudit { actor: "directory".into(), action: action.into(), target: target.into(), detail };
    crate::audit::write_audit(c, Some(&entry)).await
}

async fn account_by_id(c: &mut dyn Conn, id: &str) -> Result<OperatorAccount> {
    let r = c
        .row(
            &format!(
                "SELECT {COLS}, o.disabled, \
                 (SELECT COUNT(*) FROM operator_sessions s WHERE s.operator_id = o.id AND s.expires_at > $1) AS sessions \
                 FROM operators o WHERE o.id = $2"
            ),
            args![now_ms(), id],
        )
        .await?
        .ok_or_else(|| Error::not_found("operator", id))?;
    Ok(OperatorAccount { operator: operator_from(&r)?, disabled: r.flag("disabled")?, sessions: r.i("sessions")? })
}

#[async_trait]
impl DirectoryStore for SqlStore {
    async fn operator_directory_dn(&self, login: &str) -> Result<Option<String>> {
        let login = login.to_owned();
        on!(self.read, |c| {
            let row = c.row("SELECT directory_dn FROM operators WHERE login = $1", args![&login]).await?;
            Ok(match row {
                Some(r) => r.os("directory_dn")?,
                None => None,
            })
        })
    }

    async fn sign_in_from_directory(&self, s: DirectorySignIn) -> Result<OperatorAccount> {
        on!(self.write, |c| {
            let found = c
                .row(
                    "SELECT id, role, directory_dn, disabled, directory_disabled FROM operators WHERE login = $1",
                    args![&s.login],
                )
                .await?;
            let id = match found {
                None => {
                    let id = okno_domain::ids::new_id();
                    c.exec(
                        "INSERT INTO operators (id, login, role, password_hash, created_at, directory_dn) \
                         VALUES ($1, $2, $3, $4, $5, $6)",
                        args![&id, &s.login, s.role.as_str(), &s.unusable_password_hash, now_ms(), &s.dn],
                    )
                    .await?;
                    let detail = json!({"login": s.login, "role": s.role.as_str(), "dn": s.dn});
                    audit(c, "operator.directory_create", &id, detail).await?;
                    id
                }
                Some(r) => {
                    let id = r.s("id")?;
                    let Some(dn) = r.os("directory_dn")? else {
                        return Err(Error::conflict(
                            "local_account",
                            format!("`{}` is a local account: the directory does not sign it in", s.login),
                        ));
                    };
                    let role = r.s("role")?;
                    if role != s.role.as_str() {
                        c.exec("UPDATE operators SET role = $1 WHERE id = $2", args![s.role.as_str(), &id]).await?;
                        let detail = json!({"login": s.login, "from": role, "to": s.role.as_str()});
                        audit(c, "operator.role", &id, detail).await?;
                    }
                    if dn != s.dn {
                        c.exec("UPDATE operators SET directory_dn = $1 WHERE id = $2", args![&s.dn, &id]).await?;
                        audit(c, "operator.directory_dn", &id, json!({"login": s.login, "from": dn, "to": s.dn}))
                            .await?;
                    }
                    if r.flag("disabled")? && r.flag("directory_disabled")? {
                        c.exec("UPDATE operators SET disabled = 0, directory_disabled = 0 WHERE id = $1", args![&id])
                            .await?;
                        audit(c, "operator.enable", &id, json!({"login": s.login, "by": "directory"})).await?;
                    }
                    id
                }
            };
            account_by_id(c, &id).await
        })
    }

    async fn directory_operators_signed_in(&self) -> Result<Vec<DirectoryOperator>> {
        on!(self.read, |c| {
            let rows = c
                .rows(
                    &format!(
                        "SELECT {COLS}, o.directory_dn FROM operators o \
                         WHERE o.directory_dn IS NOT NULL AND o.disabled = 0 AND EXISTS \
                         (SELECT 1 FROM operator_sessions s WHERE s.operator_id = o.id AND s.expires_at > $1) \
                         ORDER BY o.login"
                    ),
                    args![now_ms()],
                )
                .await?;
            rows.iter()
                .map(|r| Ok(DirectoryOperator { operator: operator_from(r)?, dn: r.s("directory_dn")? }))
                .collect()
        })
    }

    async fn directory_refused(&self, operator_id: &str, reason: &str) -> Result<()> {
        let (id, reason) = (operator_id.to_owned(), reason.to_owned());
        on!(self.write, |c| {
            let r = c
                .row("SELECT login, directory_dn FROM operators WHERE id = $1", args![&id])
                .await?
                .ok_or_else(|| Error::not_found("operator", &id))?;
            if r.os("directory_dn")?.is_none() {
                return Err(Error::new(ErrorKind::Conflict, "local_account", "a local account is not the directory's"));
            }
            c.exec("UPDATE operators SET disabled = 1, directory_disabled = 1 WHERE id = $1", args![&id]).await?;
            let ended = c.exec("DELETE FROM operator_sessions WHERE operator_id = $1", args![&id]).await?;
            let detail = json!({"login": r.s("login")?, "reason": reason, "sessions_ended": ended});
            audit(c, "operator.directory_disable", &id, detail).await
        })
    }

    async fn directory_role(&self, operator_id: &str, role: Role) -> Result<()> {
        let id = operator_id.to_owned();
        on!(self.write, |c| {
            let r = c
                .row("SELECT login, role FROM operators WHERE id = $1 AND directory_dn IS NOT NULL", args![&id])
                .await?
                .ok_or_else(|| Error::not_found("directory operator", &id))?;
            let from = r.s("role")?;
            if from == role.as_str() {
                return Ok(());
            }
            c.exec("UPDATE operators SET role = $1 WHERE id = $2", args![role.as_str(), &id]).await?;
            audit(c, "operator.role", &id, json!({"login": r.s("login")?, "from": from, "to": role.as_str()})).await
        })
    }
}
