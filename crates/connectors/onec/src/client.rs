//! The standard OData interface of a 1C infobase, as okno reads it:
//! `GET {base}/{Set}?$format=json&…` with HTTP Basic auth (an infobase user; a Cyrillic name
//! goes as UTF-8), one page at a time.
//!
//! 1C treats `$top` as the size of the answer and sends no `odata.nextLink`, so pages are read
//! with `$top`/`$skip` over a fixed order (`$orderby=Ref_Key`). Every read also sends
//! `allowedOnly=true`: with record-level access rules, objects the user may not see are left out
//! instead of failing the whole read. Without `$format=json` 1C answers Atom XML.
//!
//! 1C's answers, told apart: 401/403 — the user name or password is refused (a person must fix
//! it); 404 — the entity set is not published (`УстановитьСоставСтандартногоИнтерфейсаOData`)
//! or the object is not there; 400 — 1C names what is wrong with the request (`odata.error`,
//! e.g. code 14 for a `$filter` it cannot parse, code 6 for a field it does not know); 5xx, a
//! timeout or a body that is not JSON — 1C is unavailable for now.

use std::time::Duration;

use reqwest::StatusCode;

use crate::person::{FieldMap, Person};
use crate::wire::{self, parse_error, parse_object, parse_page, query_string, Record};

/// How long one call may take: 1C's first call after a pause starts a session and can take
/// more than 30 s.
const TIMEOUT: Duration = Duration::from_secs(90);
/// Objects per page when okno reads a whole entity set.
pub const PAGE_SIZE: usize = 500;
/// Keys per `Ref_Key eq guid'…' or …` filter: keeps URLs well under web servers' limits.
pub const KEYS_PER_CALL: usize = 25;

/// What went wrong reading 1C.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ODataError {
    /// 401/403: 1C (or its web server) refused the user name or password, or the user may not
    /// use OData. A person must fix it.
    #[error("1C refused the credentials ({status}): {message}")]
    Unauthorized { status: u16, message: String },
    /// 404: the entity set is not published in the OData interface, or the object is not there.
    #[error("1C has no {what}: {message}")]
    NotFound { what: String, message: String },
    /// 400 (or another 4xx): 1C named what is wrong with the request.
    #[error("1C refused the request (code {code}): {message}")]
    Invalid { code: String, message: String },
    /// The network, a timeout, a 5xx, an answer that is not 1C's JSON: try again later.
    #[error("1C is unreachable or failed: {0}")]
    Unavailable(String),
}

impl ODataError {
    /// Whether trying the same call later may succeed.
    pub fn is_passing(&self) -> bool {
        matches!(self, ODataError::Unavailable(_))
    }
}

/// Which page of an entity set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// Objects at most (`$top`).
    pub top: usize,
    /// Objects passed over first (`$skip`).
    pub skip: usize,
}

impl PageRequest {
    /// The `n`-th page (from 0) of `size` objects.
    pub fn nth(n: usize, size: usize) -> PageRequest {
        PageRequest { top: size, skip: n.saturating_mul(size) }
    }
}

/// A read of an entity set: the options 1C's standard interface takes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// `$filter`, e.g. `DeletionMark eq false and Code eq '000000012'`.
    pub filter: Option<String>,
    /// `$select`: the fields to answer (all when empty).
    pub select: Vec<String>,
    /// `$orderby`, e.g. `Ref_Key` or `Description desc`.
    pub order_by: Option<String>,
    /// `$top` and `$skip`.
    pub page: Option<PageRequest>,
}

/// One infobase's OData interface.
#[derive(Clone)]
pub struct ODataClient {
    http: reqwest::Client,
    base: String,
    user: String,
    password: String,
}

impl std::fmt::Debug for ODataClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ODataClient").field("base", &self.base).field("user", &self.user).finish_non_exhaustive()
    }
}

impl ODataClient {
    /// A client of the interface at `base_url` (`https://host/base/odata/standard.odata`) as the
    /// infobase user `user`.
    pub fn new(base_url: &str, user: &str, password: &str) -> Result<ODataClient, ODataError> {
        let base = base_url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ODataError::Invalid {
                code: "base_url".into(),
                message: format!("`{base}` is not an http(s) address of …/odata/standard.odata"),
            });
        }
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .build()
            .map_err(|e| ODataError::Unavailable(format!("an HTTP client: {e}")))?;
        Ok(ODataClient { http, base, user: user.to_string(), password: password.to_string() })
    }

    /// The interface's address.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// One GET under the base: `path` already encoded, `pairs` encoded here. The body of a 2xx.
    async fn get(&self, path: &str, pairs: &[(&str, String)], what: &str) -> Result<Vec<u8>, ODataError> {
        let url = if pairs.is_empty() {
            format!("{}/{path}", self.base)
        } else {
            format!("{}/{path}?{}", self.base, query_string(pairs))
        };
        let resp = self
            .http
            .get(url)
            .basic_auth(&self.user, Some(&self.password))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| ODataError::Unavailable(e.without_url().to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| ODataError::Unavailable(e.without_url().to_string()))?.to_vec();
        if status.is_success() {
            return Ok(body);
        }
        let fault = parse_error(&body);
        let message = fault
            .as_ref()
            .map(|f| f.message.clone())
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(match status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => ODataError::Unauthorized {
                status: status.as_u16(),
                message: if message.trim().is_empty() { "no reason given".into() } else { message },
            },
            StatusCode::NOT_FOUND => ODataError::NotFound { what: what.to_string(), message },
            s if s.is_client_error() => {
                ODataError::Invalid { code: fault.map(|f| f.code).unwrap_or_else(|| s.as_u16().to_string()), message }
            }
            s => ODataError::Unavailable(format!("{s}: {message}")),
        })
    }

    /// Checks the address and the credentials: reads the interface's `$metadata`.
    pub async fn check(&self) -> Result<(), ODataError> {
        let body = self.get("$metadata", &[], "OData interface").await?;
        if body.windows(4).any(|w| w == b"Edmx") {
            Ok(())
        } else {
            Err(ODataError::Unavailable("the address answers, but not with 1C's $metadata".into()))
        }
    }

    /// A read of `entity_set` with any options; the objects of the answer, in 1C's order.
    pub async fn query(&self, entity_set: &str, query: &Query) -> Result<Vec<Record>, ODataError> {
        let mut pairs: Vec<(&str, String)> = vec![("$format", "json".into()), ("allowedOnly", "true".into())];
        if let Some(f) = query.filter.as_ref().filter(|f| !f.trim().is_empty()) {
            pairs.push(("$filter", f.clone()));
        }
        if !query.select.is_empty() {
            pairs.push(("$select", query.select.join(",")));
        }
        if let Some(o) = &query.order_by {
            pairs.push(("$orderby", o.clone()));
        }
        if let Some(p) = query.page {
            pairs.push(("$top", p.top.min(wire::MAX_PAGE).to_string()));
            pairs.push(("$skip", p.skip.to_string()));
        }
        let body = self.get(&wire::path_segment(entity_set), &pairs, entity_set).await?;
        parse_page(&body).map_err(|e| ODataError::Unavailable(format!("{entity_set}: {e}")))
    }

    /// A page of an entity set in `Ref_Key` order, with an optional `$filter`.
    pub async fn catalog(
        &self,
        entity_set: &str,
        filter: Option<&str>,
        page: PageRequest,
    ) -> Result<Vec<Record>, ODataError> {
        let query = Query {
            filter: filter.map(str::to_string),
            order_by: Some("Ref_Key".into()),
            page: Some(page),
            ..Query::default()
        };
        self.query(entity_set, &query).await
    }

    /// One object by its reference.
    pub async fn object(&self, entity_set: &str, ref_key: &str) -> Result<Record, ODataError> {
        if !wire::is_guid(ref_key) {
            return Err(ODataError::Invalid { code: "ref_key".into(), message: format!("`{ref_key}` is not a GUID") });
        }
        let path = format!("{}(guid'{}')", wire::path_segment(entity_set), ref_key.to_ascii_lowercase());
        let body = self.get(&path, &[("$format", "json".into())], &format!("{entity_set} {ref_key}")).await?;
        parse_object(&body).map_err(|e| ODataError::Unavailable(format!("{entity_set}: {e}")))
    }

    /// The objects with these references that are there (a missing one is simply not in the
    /// answer), [`KEYS_PER_CALL`] a call, with `extra_filter` and `$select` applied.
    pub async fn by_keys(
        &self,
        entity_set: &str,
        keys: &[&str],
        extra_filter: &str,
        select: &[String],
    ) -> Result<Vec<Record>, ODataError> {
        let mut out = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(KEYS_PER_CALL) {
            let keys =
                wire::keys_filter(chunk).map_err(|m| ODataError::Invalid { code: "ref_key".into(), message: m })?;
            let filter = if extra_filter.trim().is_empty() { keys } else { format!("({extra_filter}) and ({keys})") };
            let query = Query { filter: Some(filter), select: select.to_vec(), ..Query::default() };
            out.extend(self.query(entity_set, &query).await?);
        }
        Ok(out)
    }

    /// A page of people of the mapped entity set (objects without a `Ref_Key` are passed over).
    pub async fn persons(&self, map: &FieldMap, page: PageRequest) -> Result<Vec<Person>, ODataError> {
        let query = Query {
            filter: Some(map.filter.clone()),
            select: map.select(),
            order_by: Some("Ref_Key".into()),
            page: Some(page),
        };
        let records = self.query(&map.entity_set, &query).await?;
        Ok(records.iter().filter_map(|r| Person::from_record(r, map)).collect())
    }
}
