//! Operators' accounts and their sessions in the web UI.
//!
//! A session is a row (`operator_sessions`) keyed by the SHA-256 of the secret in the browser's
//! cookie, so ending one — a logout, a disabled account, a new password — ends it in every okno
//! process on the database at once: each request looks its session up, together with the
//! operator (one indexed read, the same the UI did before to load the operator).
//!
//! The last enabled administrator cannot be disabled or given another role: the check and the
//! change are one transaction, and on PostgreSQL the administrators' rows are locked first, so
//! two administrators demoting each other at the same moment cannot both succeed.
//!
//! A fresh install has no operators. Each process that starts so adds a one-time setup link
//! (`setup_tokens`, under the SHA-256 of its secret); the first administrator is created through
//! one of them in a transaction that first deletes them all, so two people following two links
//! at the same moment cannot both become the first administrator.

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::{Operator, Role};
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde::Serialize;

use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};
use crate::Backend;

/// An operator as administration sees them.
#[derive(Debug, Clone, Serialize)]
pub struct OperatorAccount {
    #[serde(flatten)]
    pub operator: Operator,
    /// A disabled operator cannot sign in.
    pub disabled: bool,
    /// Sessions open now (signed-in browsers).
    pub sessions: i64,
}

/// A change to an operator's account.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountChange {
    /// Ends every session of theirs too.
    Disable,
    Enable,
    Role(Role),
    /// A new argon2 hash; ends every session of theirs but `keep_session`.
    Password(String),
}

/// Operators' accounts and sessions.
#[async_trait]
pub trait OperatorStore: Send + Sync + 'static {
    /// Every operator, by login, with whether they are disabled and their open sessions.
    async fn operator_accounts(&self) -> Result<Vec<OperatorAccount>>;
    async fn operator_account(&self, login: &str) -> Result<Option<OperatorAccount>>;
    /// Changes an operator's account and writes the audit line `actor` did it, in one
    /// transaction. Disabling, and a new password, end the operator's sessions (all but the one
    /// whose hash is `keep_session`). Leaving no enabled administrator is a conflict
    /// (`last_admin`); an unknown login is not found.
    async fn change_operator(
        &self,
        login: &str,
        change: AccountChange,
        actor: &str,
        keep_session: Option<&str>,
    ) -> Result<OperatorAccount>;
    /// Records a new session of an enabled operator until `expires_at` (and sweeps expired ones).
    /// A disabled or unknown operator gets none (`operator_disabled`, not found).
    async fn create_session(&self, hash: &str, login: &str, expires_at: Millis, addr: Option<&str>) -> Result<()>;
    /// The operator of a session that is still valid: recorded, not expired, its operator enabled.
    async fn session_operator(&self, hash: &str) -> Result<Option<Operator>>;
    /// Ends one session (a logout); ending an ended one is fine.
    async fn end_session(&self, hash: &str) -> Result<()>;
    /// Removes expired sessions; returns how many.
    async fn sweep_sessions(&self) -> Result<u64>;
    /// Whether any operator account exists (disabled ones count).
    async fn has_operators(&self) -> Result<bool>;
    /// Records a one-time setup link valid until `expires_at` (and drops expired ones).
    async fn add_setup_token(&self, hash: &str, expires_at: Millis) -> Result<()>;
    /// Whether the setup link is usable now: recorded, not expired, and no operator exists yet.
    async fn setup_token_usable(&self, hash: &str) -> Result<bool>;
    /// Creates the first administrator through a setup link, in one transaction that uses up
    /// every setup link and writes the audit line. An unknown, used or expired link is refused
    /// (`setup_link_invalid`), as is setup once an operator exists (`setup_done`).
    async fn complete_setup(&self, hash: &str, login: &str, password_hash: &str) -> Result<Operator>;

    async fn create_operator(&self, login: &str, role: Role, password_hash: &str) -> Result<Operator>;
    async fn operator_by_login(&self, login: &str) -> Result<Option<Operator>>;
    /// Keeps the UI language an operator chose with their account.
    async fn set_operator_lang(&self, login: &str, lang: &str) -> Result<()>;
    /// Every operator, by login.
    async fn list_operators(&self) -> Result<Vec<Operator>>;
}

pub(crate) const OPERATOR_COLS: &str = "o.id, o.login, o.role, o.password_hash, o.created_at, o.lang";

fn account_of(r: &Row) -> Result<OperatorAccount> {
    Ok(OperatorAccount { operator: operator_from(r)?, disabled: r.flag("disabled")?, sessions: r.i("sessions")? })
}

/// `SELECT` of accounts with their open sessions; `where_` narrows it.
fn accounts_query(where_: &str) -> String {
    format!(
        "SELECT {OPERATOR_COLS}, o.disabled, \
         (SELECT COUNT(*) FROM operator_sessions s WHERE s.operator_id = o.id AND s.expires_at > $1) AS sessions \
         FROM operators o {where_} ORDER BY o.login"
    )
}

async fn load_account(c: &mut dyn Conn, login: &str) -> Result<Option<OperatorAccount>> {
    c.row(&accounts_query("WHERE o.login = $2"), args![now_ms(), login]).await?.map(|r| account_of(&r)).transpose()
}

/// Whether the change leaves `target` an enabled administrator.
fn stays_admin(target: &OperatorAccount, change: &AccountChange) -> bool {
    match change {
        AccountChange::Disable => false,
        AccountChange::Role(r) => *r == Role::Admin && !target.disabled,
        AccountChange::Enable | AccountChange::Password(_) => target.operator.role == Role::Admin && !target.disabled,
    }
}

#[async_trait]
impl OperatorStore for SqlStore {
    async fn operator_accounts(&self) -> Result<Vec<OperatorAccount>> {
        on!(self.read, |c| c.rows(&accounts_query(""), args![now_ms()]).await?.iter().map(account_of).collect())
    }

    async fn operator_account(&self, login: &str) -> Result<Option<OperatorAccount>> {
        let login = login.to_owned();
        on!(self.read, |c| load_account(c, &login).await)
    }

    async fn change_operator(
        &self,
        login: &str,
        change: AccountChange,
        actor: &str,
        keep_session: Option<&str>,
    ) -> Result<OperatorAccount> {
        let (login, actor, keep) = (login.to_owned(), actor.to_owned(), keep_session.map(str::to_owned));
        let lock = if <Self as crate::Store>::backend(self) == Backend::Postgres { " FOR UPDATE" } else { "" };
        on!(self.write, |c| {
            // The administrators first (locked on PostgreSQL: a concurrent change of another
            // administrator waits here and then sees this one's outcome).
            let admins: Vec<String> = c
                .rows(
                    &format!("SELECT login FROM operators WHERE role = 'admin' AND disabled = 0 ORDER BY id{lock}"),
                    args![],
                )
                .await?
                .iter()
                .map(|r| r.s("login"))
                .collect::<Result<_>>()?;
            let target = load_account(c, &login).await?.ok_or_else(|| Error::not_found("operator", &login))?;
            let was_admin = admins.contains(&login);
            if was_admin && !stays_admin(&target, &change) && admins.len() == 1 {
                return Err(Error::conflict(
                    "last_admin",
                    format!("`{login}` is the last administrator: make another operator an administrator first"),
                ));
            }
            let id = target.operator.id.clone();
            let (action, detail) = match &change {
                AccountChange::Disable => {
                    c.exec("UPDATE operators SET disabled = 1, directory_disabled = 0 WHERE id = $1", args![&id])
                        .await?;
                    c.exec("DELETE FROM operator_sessions WHERE operator_id = $1", args![&id]).await?;
                    ("operator.disable", serde_json::json!({"login": login}))
                }
                AccountChange::Enable => {
                    c.exec("UPDATE operators SET disabled = 0, directory_disabled = 0 WHERE id = $1", args![&id])
                        .await?;
                    ("operator.enable", serde_json::json!({"login": login}))
                }
                AccountChange::Role(role) => {
                    c.exec("UPDATE operators SET role = $1 WHERE id = $2", args![role.as_str(), &id]).await?;
                    let from = target.operator.role.as_str();
                    ("operator.role", serde_json::json!({"login": login, "from": from, "to": role.as_str()}))
                }
                AccountChange::Password(hash) => {
                    c.exec("UPDATE operators SET password_hash = $1 WHERE id = $2", args![hash, &id]).await?;
                    match &keep {
                        Some(k) => {
                            c.exec("DELETE FROM operator_sessions WHERE operator_id = $1 AND hash <> $2", args![&id, k])
                                .await?
                        }
                        None => c.exec("DELETE FROM operator_sessions WHERE operator_id = $1", args![&id]).await?,
                    };
                    ("operator.password", serde_json::json!({"login": login}))
                }
            };
            c.exec(
                "INSERT INTO audit_log (id, actor, action, target, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
                args![okno_domain::ids::new_id(), &actor, action, &id, detail.to_string(), now_ms()],
            )
            .await?;
            load_account(c, &login).await?.ok_or_else(|| Error::not_found("operator", &login))
        })
    }

    async fn create_session(&self, hash: &str, login: &str, expires_at: Millis, addr: Option<&str>) -> Result<()> {
        let (hash, login, addr) = (hash.to_owned(), login.to_owned(), addr.map(str::to_owned));
        on!(self.write, |c| {
            let now = now_ms();
            c.exec("DELETE FROM operator_sessions WHERE expires_at <= $1", args![now]).await?;
            let row = c
                .row("SELECT id, disabled FROM operators WHERE login = $1", args![&login])
                .await?
                .ok_or_else(|| Error::not_found("operator", &login))?;
            if row.flag("disabled")? {
                return Err(Error::new(
                    okno_domain::ErrorKind::Forbidden,
                    "operator_disabled",
                    format!("the operator `{login}` is disabled"),
                ));
            }
            c.exec(
                "INSERT INTO operator_sessions (hash, operator_id, created_at, expires_at, addr) VALUES ($1, $2, $3, $4, $5)",
                args![&hash, row.s("id")?, now, expires_at, addr],
            )
            .await?;
            Ok(())
        })
    }

    async fn session_operator(&self, hash: &str) -> Result<Option<Operator>> {
        let hash = hash.to_owned();
        on!(self.read, |c| {
            c.row(
                &format!(
                    "SELECT {OPERATOR_COLS} FROM operator_sessions s JOIN operators o ON o.id = s.operator_id \
                     WHERE s.hash = $1 AND s.expires_at > $2 AND o.disabled = 0"
                ),
                args![&hash, now_ms()],
            )
            .await?
            .map(|r| operator_from(&r))
            .transpose()
        })
    }

    async fn end_session(&self, hash: &str) -> Result<()> {
        let hash = hash.to_owned();
        on!(self.write, |c| {
            c.exec("DELETE FROM operator_sessions WHERE hash = $1", args![&hash]).await?;
            Ok(())
        })
    }

    async fn sweep_sessions(&self) -> Result<u64> {
        on!(self.write, |c| c.exec("DELETE FROM operator_sessions WHERE expires_at <= $1", args![now_ms()]).await)
    }

    async fn has_operators(&self) -> Result<bool> {
        on!(self.read, |c| Ok(c.row("SELECT id FROM operators LIMIT 1", args![]).await?.is_some()))
    }

    async fn add_setup_token(&self, hash: &str, expires_at: Millis) -> Result<()> {
        let hash = hash.to_owned();
        on!(self.write, |c| {
            let now = now_ms();
            c.exec("DELETE FROM setup_tokens WHERE expires_at <= $1", args![now]).await?;
            c.exec(
                "INSERT INTO setup_tokens (hash, created_at, expires_at) VALUES ($1, $2, $3)",
                args![&hash, now, expires_at],
            )
            .await?;
            Ok(())
        })
    }

    async fn setup_token_usable(&self, hash: &str) -> Result<bool> {
        let hash = hash.to_owned();
        on!(self.read, |c| {
            let link = c
                .row("SELECT hash FROM setup_tokens WHERE hash = $1 AND expires_at > $2", args![&hash, now_ms()])
                .await?;
            Ok(link.is_some() && c.row("SELECT id FROM operators LIMIT 1", args![]).await?.is_none())
        })
    }

    async fn complete_setup(&self, hash: &str, login: &str, password_hash: &str) -> Result<Operator> {
        let (hash, login, password_hash) = (hash.to_owned(), login.to_owned(), password_hash.to_owned());
        on!(self.write, |c| {
            // Every link goes, whichever is used: on PostgreSQL a second setup at the same
            // moment waits on these rows and then finds none left.
            let links = c.rows("DELETE FROM setup_tokens RETURNING hash, expires_at", args![]).await?;
            let mut ours = false;
            for r in &links {
                ours |= r.s("hash")? == hash && r.i("expires_at")? > now_ms();
            }
            if c.row("SELECT id FROM operators LIMIT 1", args![]).await?.is_some() {
                return Err(Error::conflict("setup_done", "okno already has an administrator: sign in instead"));
            }
            if !ours {
                return Err(Error::new(
                    okno_domain::ErrorKind::Forbidden,
                    "setup_link_invalid",
                    "this setup link is unknown, used or expired: restart okno for a new one, \
                     or create an administrator with `okno user create --role admin`",
                ));
            }
            let id = okno_domain::ids::new_id();
            let now = now_ms();
            c.exec(
                "INSERT INTO operators (id, login, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                args![&id, &login, Role::Admin.as_str(), &password_hash, now],
            )
            .await?;
            c.exec(
                "INSERT INTO audit_log (id, actor, action, target, detail, at) VALUES ($1, $2, $3, $4, $5, $6)",
                args![
                    okno_domain::ids::new_id(),
                    "setup",
                    "operator.setup",
                    &id,
                    serde_json::json!({"login": login, "role": "admin"}).to_string(),
                    now
                ],
            )
            .await?;
            c.row(&format!("SELECT {OPERATOR_COLS} FROM operators o WHERE o.id = $1"), args![&id])
                .await?
                .map(|r| operator_from(&r))
                .transpose()?
                .ok_or_else(|| Error::internal("the new administrator was not found"))
        })
    }

    async fn create_operator(&self, login: &str, role: Role, password_hash: &str) -> Result<Operator> {
        let login = login.to_owned();
        let password_hash = password_hash.to_owned();
        on!(self.write, |c| {
            let login = login.as_str();
            let password_hash = password_hash.as_str();
            let id = new_id();
            let now = now_ms();
            c.exec(
                "INSERT INTO operators (id, login, role, password_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                args![&id, login, role.as_str(), password_hash, now],
            )
            .await
            .map_err(|e| match e {
                err if err.kind == okno_domain::ErrorKind::Conflict => {
                    Error::conflict("login_taken", format!("an operator with login `{login}` already exists"))
                }
                err => err,
            })?;
            Ok(Operator {
                id,
                login: login.to_string(),
                role,
                password_hash: password_hash.to_string(),
                lang: None,
                created_at: now,
            })
        })
    }

    async fn operator_by_login(&self, login: &str) -> Result<Option<Operator>> {
        let login = login.to_owned();
        on!(self.read, |c| {
            let login = login.as_str();
            c.row(
                "SELECT id, login, role, password_hash, created_at, lang FROM operators WHERE login = $1",
                args![login],
            )
            .await?
            .map(|r| operator_from(&r))
            .transpose()
        })
    }

    async fn set_operator_lang(&self, login: &str, lang: &str) -> Result<()> {
        let (login, lang) = (login.to_owned(), lang.to_owned());
        on!(self.write, |c| {
            c.exec("UPDATE operators SET lang = $1 WHERE login = $2", args![&lang, &login]).await?;
            Ok(())
        })
    }

    async fn list_operators(&self) -> Result<Vec<Operator>> {
        on!(self.read, |c| {
            c.rows("SELECT id, login, role, password_hash, created_at, lang FROM operators ORDER BY login", args![])
                .await?
                .iter()
                .map(operator_from)
                .collect()
        })
    }
}

pub(crate) fn operator_from(r: &Row) -> Result<Operator> {
    Ok(Operator {
        id: r.s("id")?,
        login: r.s("login")?,
        role: Role::parse(&r.s("role")?)?,
        password_hash: r.s("password_hash")?,
        lang: r.os("lang")?,
        created_at: r.i("created_at")?,
    })
}
