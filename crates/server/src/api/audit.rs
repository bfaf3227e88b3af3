//! `/api/v1/audit`: the audit log of configuration changes, newest first (admins only).

use axum::extract::State;
use axum::Json;
use okno_domain::model::{AuditEntry, Page, Permission};

use super::PageParams;
use crate::auth::Auth;
use crate::error::{ApiQuery, ApiResult};
use crate::AppState;

#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(PageParams), responses((status = 200, body = Page<AuditEntry>)))]
pub async fn list(
    State(state): State<AppState>,
    auth: Auth,
    ApiQuery(page): ApiQuery<PageParams>,
) -> ApiResult<Json<Page<AuditEntry>>> {
    auth.require(Permission::Configure)?;
    Ok(Json(state.engine.store.list_audit(page.request()).await?))
}
