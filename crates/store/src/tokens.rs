//! API tokens: what a business system or a script signs its calls with. Only a token's hash is
//! kept; a revoked token stays in the database but no longer lets anyone in.

use async_trait::async_trait;
use okno_domain::ids::new_id;
use okno_domain::model::{ApiToken, Role};
use okno_domain::time::now_ms;
use okno_domain::{Error, Result};

use crate::db::{args, Conn, Row};
use crate::sql::{on, SqlStore};

/// API tokens: issuing, looking up by hash, listing and revoking them.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    async fn create_token(&self, name: &str, role: Role, token_hash: &str) -> Result<ApiToken>;
    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>>;
    async fn list_tokens(&self) -> Result<Vec<ApiToken>>;
    async fn revoke_token(&self, id: &str) -> Result<()>;
}

#[async_trait]
impl TokenStore for SqlStore {
    async fn create_token(&self, name: &str, role: Role, token_hash: &str) -> Result<ApiToken> {
        let name = name.to_owned();
        let token_hash = token_hash.to_owned();
        on!(self.write, |c| {
            let name = name.as_str();
            let token_hash = token_hash.as_str();
            let id = new_id();
            let now = now_ms();
            c.exec(
                "INSERT INTO api_tokens (id, name, role, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
                args![&id, name, role.as_str(), token_hash, now],
            )
            .await?;
            Ok(ApiToken { id, name: name.to_string(), role, created_at: now })
        })
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<ApiToken>> {
        let token_hash = token_hash.to_owned();
        on!(self.read, |c| {
            let token_hash = token_hash.as_str();
            c.row(
                "SELECT id, name, role, created_at FROM api_tokens WHERE token_hash = $1 AND revoked = 0",
                args![token_hash],
            )
            .await?
            .map(|r| token_from(&r))
            .transpose()
        })
    }

    async fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        on!(self.read, |c| {
            c.rows("SELECT id, name, role, created_at FROM api_tokens WHERE revoked = 0 ORDER BY id", args![])
                .await?
                .iter()
                .map(token_from)
                .collect()
        })
    }

    async fn revoke_token(&self, id: &str) -> Result<()> {
        let id = id.to_owned();
        on!(self.write, |c| {
            let id = id.as_str();
            let done = c.exec("UPDATE api_tokens SET revoked = 1 WHERE id = $1 AND revoked = 0", args![id]).await?;
            if done == 0 {
                return Err(Error::not_found("token", id));
            }
            Ok(())
        })
    }
}

fn token_from(row: &Row) -> Result<ApiToken> {
    Ok(ApiToken {
        id: row.s("id")?,
        name: row.s("name")?,
        role: Role::parse(&row.s("role")?)?,
        created_at: row.i("created_at")?,
    })
}
