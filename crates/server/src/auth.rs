//! Bearer-token authentication. Tokens are stored as SHA-256 hashes: they are long random
//! strings, so a fast hash is enough and a lookup is one indexed read.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use okno_domain::model::{ApiToken, Permission};
use okno_domain::signing::sha256_hex;
use okno_domain::{Error, ErrorKind};

use crate::error::ApiError;
use crate::AppState;

/// The caller of an API request.
#[derive(Debug, Clone)]
pub struct Auth {
    pub token: ApiToken,
}

impl Auth {
    /// Fails with 403 unless the caller's role has the permission.
    pub fn require(&self, p: Permission) -> Result<(), ApiError> {
        if self.token.role.allows(p) {
            Ok(())
        } else {
            Err(ApiError(Error::new(
                ErrorKind::Forbidden,
                "forbidden",
                format!("the `{}` role may not do this", self.token.role),
            )))
        }
    }

    /// The creator recorded on what this caller makes (`token:<id>`): a token's id, since names
    /// repeat.
    pub fn owner(&self) -> String {
        format!("token:{}", self.token.id)
    }

    /// Whether this caller may see and change something made by `created_by`: a role that
    /// configures okno manages everything, another only what its token made.
    pub fn owns(&self, created_by: Option<&str>) -> bool {
        self.token.role.allows(Permission::Configure) || created_by == Some(self.owner().as_str())
    }

    /// How this caller appears in the audit log and as a message author.
    pub fn actor(&self) -> String {
        format!("token:{}", self.token.name)
    }
}

/// A new random API token, as shown once to its owner.
pub fn new_token() -> String {
    format!("okno_{}", okno_domain::ids::random_hex(24))
}

pub fn token_hash(token: &str) -> String {
    sha256_hex(token.as_bytes())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer "))) else {
            return Err(ApiError(Error::new(
                ErrorKind::Unauthorized,
                "missing_token",
                "send an API token as `Authorization: Bearer <token>` (create one with `okno token create`)",
            )));
        };
        match state.engine.store.token_by_hash(&token_hash(token.trim())).await? {
            Some(token) => Ok(Auth { token }),
            None => Err(ApiError(Error::new(
                ErrorKind::Unauthorized,
                "invalid_token",
                "the API token is unknown or revoked",
            ))),
        }
    }
}
