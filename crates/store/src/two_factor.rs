//! Two-factor sign-in: an operator's authenticator secret (sealed at rest like the channels'
//! credentials), their one-time recovery codes (kept as hashes), and the login challenges
//! between an accepted password and an accepted code.
//!
//! What makes a code count is decided here, in one statement each, so that two okno processes
//! given the same code at the same moment cannot both accept it: a code's 30-second step must be
//! newer than the last one accepted ([`TwoFactorStore::take_totp_step`]), a recovery code is
//! deleted as it is used, and a challenge counts its wrong codes in the row.

use async_trait::async_trait;
use okno_domain::time::{now_ms, Millis};
use okno_domain::{Error, Result};
use serde_json::json;

use crate::db::{args, Conn};
use crate::operators::{operator_from, OPERATOR_COLS};
use crate::sql::{on, SqlStore};
use okno_domain::model::Operator;

/// Where an operator's two-factor sign-in stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpState {
    /// The authenticator's secret (opened), while set up or being set up.
    pub secret: Option<String>,
    /// Whether the code was confirmed: sign-ins ask for one.
    pub enabled: bool,
    /// Recovery codes not yet used.
    pub recovery_left: i64,
}

/// A login between its two steps.
#[derive(Debug, Clone)]
pub struct LoginChallenge {
    pub operator: Operator,
    /// Wrong codes given so far.
    pub failures: i64,
    pub addr: Option<String>,
}

#[async_trait]
pub trait TwoFactorStore: Send + Sync + 'static {
    /// The operator's two-factor state (none set up: no secret, not enabled).
    async fn totp_state(&self, operator_id: &str) -> Result<TotpState>;
    /// Starts setting up an authenticator with `secret` (replacing one not yet confirmed). One
    /// already enabled is a conflict (`totp_enabled`): it must be turned off first.
    async fn begin_totp(&self, operator_id: &str, secret: &str) -> Result<()>;
    /// Confirms the authenticator being set up — its code for `step` was right — and replaces
    /// the recovery codes with `recovery_hashes`, with an audit line by `actor`. Nothing being
    /// set up is a conflict (`totp_not_started`).
    async fn enable_totp(&self, operator_id: &str, step: i64, recovery_hashes: &[String], actor: &str) -> Result<()>;
    /// Turns two-factor sign-in off for the operator with `login` (the secret and recovery
    /// codes are deleted), with an audit line by `actor`; returns whether it was on or being
    /// set up. An unknown login is not found.
    async fn reset_totp(&self, login: &str, actor: &str) -> Result<bool>;
    /// Takes `step` as the operator's newest accepted code: false when a code of this step or a
    /// later one was accepted already (a code is good once).
    async fn take_totp_step(&self, operator_id: &str, step: i64) -> Result<bool>;
    /// Uses up a recovery code by its hash: false when there is no such unused code.
    async fn take_recovery_code(&self, operator_id: &str, hash: &str) -> Result<bool>;
    /// Records a login waiting for its second step (and sweeps expired ones).
    async fn add_login_challenge(
        &self,
        hash: &str,
        operator_id: &str,
        expires_at: Millis,
        addr: Option<&str>,
    ) -> Result<()>;
    /// The login waiting under `hash`, if it has not expired and its operator is enabled.
    async fn login_challenge(&self, hash: &str) -> Result<Option<LoginChallenge>>;
    /// Counts a wrong code against the challenge; returns its wrong codes so far.
    async fn challenge_failed(&self, hash: &str) -> Result<i64>;
    /// Ends a challenge (used, or given up); ending an ended one is fine.
    async fn end_login_challenge(&self, hash: &str) -> Result<()>;
}

/// The audit line of a change, in the change's transaction ([`crate::audit::write_audit`]).
async fn audit(c: &mut dyn Conn, actor: &str, action: &str, target: &str, detail: serde_json::Value) -> Result<()> {
    let entry = crate::NewAudit { actor: actor.into(), action: action.into(), target: target.into(), detail };
    crate::audit::write_audit(c, Some(&entry)).await
}

#[async_trait]
impl TwoFactorStore for SqlStore {
    async fn totp_state(&self, operator_id: &str) -> Result<TotpState> {
        let id = operator_id.to_owned();
        let (secret, enabled, recovery_left) = on!(self.read, |c| {
            let row = c.row("SELECT secret, enabled_at FROM operator_totp WHERE operator_id = $1", args![&id]).await?;
            let left = c
                .one("SELECT COUNT(*) AS n FROM operator_recovery_codes WHERE operator_id = $1", args![&id])
                .await?
                .i("n")?;
            match row {
                Some(r) => Ok((Some(r.s("secret")?), r.oi("enabled_at")?.is_some(), left)),
                None => Ok((None, false, left)),
            }
        })?;
        let secret = secret.map(|s| self.opened_secret(s)).transpose()?;
        Ok(TotpState { secret, enabled, recovery_left })
    }

    async fn begin_totp(&self, operator_id: &str, secret: &str) -> Result<()> {
        let (id, sealed) = (operator_id.to_owned(), self.sealed_secret(secret)?);
        on!(self.write, |c| {
            let row = c.row("SELECT enabled_at FROM operator_totp WHERE operator_id = $1", args![&id]).await?;
            if let Some(r) = row {
                if r.oi("enabled_at")?.is_some() {
                    return Err(Error::conflict(
                        "totp_enabled",
                        "two-factor sign-in is on already: turn it off before setting up another authenticator",
                    ));
                }
                c.exec("DELETE FROM operator_totp WHERE operator_id = $1", args![&id]).await?;
            }
            c.exec(
                "INSERT INTO operator_totp (operator_id, secret, created_at) VALUES ($1, $2, $3)",
                args![&id, &sealed, now_ms()],
            )
            .await?;
            Ok(())
        })
    }

    async fn enable_totp(&self, operator_id: &str, step: i64, recovery_hashes: &[String], actor: &str) -> Result<()> {
        let (id, hashes, actor) = (operator_id.to_owned(), recovery_hashes.to_vec(), actor.to_owned());
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE operator_totp SET enabled_at = $1, last_step = $2 \
                     WHERE operator_id = $3 AND enabled_at IS NULL",
                    args![now_ms(), step, &id],
                )
                .await?;
            if n == 0 {
                return Err(Error::conflict(
                    "totp_not_started",
                    "no authenticator is being set up: start again from «my account»",
                ));
            }
            c.exec("DELETE FROM operator_recovery_codes WHERE operator_id = $1", args![&id]).await?;
            for h in &hashes {
                c.exec("INSERT INTO operator_recovery_codes (operator_id, hash) VALUES ($1, $2)", args![&id, h])
                    .await?;
            }
            audit(c, &actor, "operator.totp_enable", &id, json!({"recovery_codes": hashes.len()})).await
        })
    }

    async fn reset_totp(&self, login: &str, actor: &str) -> Result<bool> {
        let (login, actor) = (login.to_owned(), actor.to_owned());
        on!(self.write, |c| {
            let id = c
                .row("SELECT id FROM operators WHERE login = $1", args![&login])
                .await?
                .ok_or_else(|| Error::not_found("operator", &login))?
                .s("id")?;
            let had = c.exec("DELETE FROM operator_totp WHERE operator_id = $1", args![&id]).await? > 0;
            c.exec("DELETE FROM operator_recovery_codes WHERE operator_id = $1", args![&id]).await?;
            c.exec("DELETE FROM login_challenges WHERE operator_id = $1", args![&id]).await?;
            if had {
                audit(c, &actor, "operator.totp_reset", &id, json!({"login": login})).await?;
            }
            Ok(had)
        })
    }

    async fn take_totp_step(&self, operator_id: &str, step: i64) -> Result<bool> {
        let id = operator_id.to_owned();
        on!(self.write, |c| {
            let n = c
                .exec(
                    "UPDATE operator_totp SET last_step = $1 \
                     WHERE operator_id = $2 AND enabled_at IS NOT NULL AND last_step < $1",
                    args![step, &id],
                )
                .await?;
            Ok(n == 1)
        })
    }

    async fn take_recovery_code(&self, operator_id: &str, hash: &str) -> Result<bool> {
        let (id, hash) = (operator_id.to_owned(), hash.to_owned());
        on!(self.write, |c| {
            let n = c
                .exec("DELETE FROM operator_recovery_codes WHERE operator_id = $1 AND hash = $2", args![&id, &hash])
                .await?;
            Ok(n == 1)
        })
    }

    async fn add_login_challenge(
        &self,
        hash: &str,
        operator_id: &str,
        expires_at: Millis,
        addr: Option<&str>,
    ) -> Result<()> {
        let (hash, id, addr) = (hash.to_owned(), operator_id.to_owned(), addr.map(str::to_owned));
        on!(self.write, |c| {
            let now = now_ms();
            c.exec("DELETE FROM login_challenges WHERE expires_at <= $1", args![now]).await?;
            c.exec(
                "INSERT INTO login_challenges (hash, operator_id, created_at, expires_at, addr) \
                 VALUES ($1, $2, $3, $4, $5)",
                args![&hash, &id, now, expires_at, addr],
            )
            .await?;
            Ok(())
        })
    }

    async fn login_challenge(&self, hash: &str) -> Result<Option<LoginChallenge>> {
        let hash = hash.to_owned();
        on!(self.read, |c| {
            let row = c
                .row(
                    &format!(
                        "SELECT {OPERATOR_COLS}, l.failures, l.addr FROM login_challenges l JOIN operators o ON o.id = l.operator_id \
                         WHERE l.hash = $1 AND l.expires_at > $2 AND o.disabled = 0"
                    ),
                    args![&hash, now_ms()],
                )
                .await?;
            row.map(|r| {
                Ok(LoginChallenge { operator: operator_from(&r)?, failures: r.i("failures")?, addr: r.os("addr")? })
            })
            .transpose()
        })
    }

    async fn challenge_failed(&self, hash: &str) -> Result<i64> {
        let hash = hash.to_owned();
        on!(self.write, |c| {
            c.exec("UPDATE login_challenges SET failures = failures + 1 WHERE hash = $1", args![&hash]).await?;
            Ok(c.row("SELECT failures FROM login_challenges WHERE hash = $1", args![&hash])
                .await?
                .map(|r| r.i("failures"))
                .transpose()?
                .unwrap_or(i64::MAX))
        })
    }

    async fn end_login_challenge(&self, hash: &str) -> Result<()> {
        let hash = hash.to_owned();
        on!(self.write, |c| {
            c.exec("DELETE FROM login_challenges WHERE hash = $1", args![&hash]).await?;
            Ok(())
        })
    }
}
