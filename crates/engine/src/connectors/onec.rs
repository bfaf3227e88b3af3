//! 1C:Enterprise: its counterparties and employees read from the standard OData interface on
//! a schedule and kept as okno's contacts, by their 1C reference as `external_id`.
//!
//! ```json
//! {"api_base": "https://1c.romashka.local/trade/odata/standard.odata", "user": "okno", "password": "…",
//!  "catalogs": [{"preset": "counterparties"}, {"preset": "employees"}], "every": 300}
//! ```
//!
//! ```text
//!  every `every` seconds, for each catalog:
//!    the kept versions of its objects ─► okno-connector-onec's pull: a scan of references and
//!    versions, the new and changed objects read in full ─► written to okno's contacts (found
//!    by `external_id` = the reference, else claimed by phone or e-mail, else made) ─► the
//!    versions kept (only then: a crash repeats a pull, never loses one)
//! ```
//!
//! What must reach okno at once (an order posted) 1C sends itself from the integrator's kit
//! (`integrations/1c`), with the same references as external ids.

use okno_connector_onec::{Change, FieldMap, ODataClient, ODataError, Person, SyncCursor};
use okno_domain::ids::ConnectorId;
use okno_domain::model::Connector;
use okno_domain::{Error, ErrorKind, Result};
use okno_store::{SyncedContact, MAX_SYNC_PAGE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::poll::Polled;
use super::Outcome;
use crate::Engine;

/// The attrs key of the 1C version a contact was last written from.
pub const MARK: &str = "onec_sync";

/// A 1C connector's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OnecConfig {
    /// The OData interface: `https://<server>/<base>/odata/standard.odata`.
    pub api_base: String,
    /// An infobase user allowed to use OData (Basic auth).
    pub user: String,
    #[serde(default)]
    pub password: String,
    /// The catalogs read; the counterparties unless given.
    #[serde(default)]
    pub catalogs: Vec<Catalog>,
    /// Seconds between pulls, 60..86400 (300 unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<u64>,
    /// The secret in okno's hook address (made by okno; 1C posts events to the API instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// One catalog read: a preset (`counterparties`, `employees`) and/or the field map's own keys
/// (`entity_set`, `name_field`, `contact_part`… of [`FieldMap`]) over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<String>,
    #[serde(flatten)]
    pub fields: serde_json::Map<String, Value>,
}

impl Catalog {
    /// The field map: the preset's, with the keys given over it.
    fn map(&self) -> std::result::Result<FieldMap, String> {
        let base = match self.preset.as_deref() {
            None | Some("counterparties") => FieldMap::counterparties(),
            Some("employees") => FieldMap::employees(),
            Some(other) => return Err(format!("`preset` `{other}` is counterparties or employees")),
        };
        let mut v = serde_json::to_value(base).map_err(|e| e.to_string())?;
        if let Value::Object(m) = &mut v {
            for (k, val) in &self.fields {
                if !m.contains_key(k) {
                    return Err(format!("a catalog has no field `{k}`"));
                }
                m.insert(k.clone(), val.clone());
            }
        }
        serde_json::from_value(v).map_err(|e| format!("a catalog: {e}"))
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::invalid("invalid_connector_config", message.into())
}

impl OnecConfig {
    fn parse(config: &Value) -> Result<OnecConfig> {
        let cfg: OnecConfig =
            serde_json::from_value(config.clone()).map_err(|e| invalid(format!("onec connector config: {e}")))?;
        if cfg.user.trim().is_empty() {
            return Err(invalid("`user` is the infobase user okno reads as"));
        }
        if cfg.every.is_some_and(|s| !(60..=86_400).contains(&s)) {
            return Err(invalid("`every` is 60..86400 seconds"));
        }
        for c in &cfg.catalogs {
            c.map().map_err(invalid)?;
        }
        Ok(cfg)
    }

    fn maps(&self) -> Vec<FieldMap> {
        if self.catalogs.is_empty() {
            return vec![FieldMap::counterparties()];
        }
        self.catalogs.iter().filter_map(|c| c.map().ok()).collect()
    }

    fn client(&self) -> std::result::Result<ODataClient, ODataError> {
        ODataClient::new(&self.api_base, &self.user, &self.password)
    }

    fn every(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.every.unwrap_or(300))
    }
}

/// Checks the address and the credentials with 1C (its `$metadata`) and that each catalog is
/// published.
pub(crate) async fn connect(
    _engine: &Engine,
    _id: &ConnectorId,
    secret: &str,
    config: &Value,
) -> Result<(Value, Value)> {
    let mut cfg = OnecConfig::parse(config)?;
    let client = cfg.client().map_err(|e| invalid(e.to_string()))?;
    client.check().await.map_err(|e| match e {
        ODataError::Unauthorized { .. } => Error::invalid("invalid_credentials", e.to_string()),
        ODataError::Invalid { .. } | ODataError::NotFound { .. } => invalid(e.to_string()),
        e => Error::new(ErrorKind::Unavailable, "onec_unavailable", e.to_string()),
    })?;
    for map in cfg.maps() {
        let page = okno_connector_onec::PageRequest::nth(0, 1);
        client.persons(&map, page).await.map_err(|e| match e {
            ODataError::NotFound { .. } => invalid(format!(
                "1C does not publish `{}` over OData (Administration → OData settings): {e}",
                map.entity_set
            )),
            ODataError::Unauthorized { .. } => Error::invalid("invalid_credentials", e.to_string()),
            e => Error::new(ErrorKind::Unavailable, "onec_unavailable", e.to_string()),
        })?;
    }
    cfg.secret = Some(secret.to_string());
    let info = json!({"account": cfg.api_base, "catalogs": cfg.maps().iter().map(|m| m.entity_set.clone()).collect::<Vec<_>>()});
    let config = serde_json::to_value(&cfg).map_err(|e| Error::internal(e.to_string()))?;
    Ok((config, info))
}

fn outcome(e: ODataError) -> Outcome {
    match e {
        ODataError::Unavailable(_) => Outcome::Retry(e.to_string()),
        ODataError::Unauthorized { .. } => Outcome::Held(e.to_string()),
        ODataError::NotFound { .. } | ODataError::Invalid { .. } => Outcome::Refused(e.to_string()),
    }
}

/// A person from 1C as okno keeps them.
pub(crate) fn synced(p: &Person) -> SyncedContact {
    let name = Some(p.description.trim().to_string()).filter(|n| !n.is_empty());
    SyncedContact {
        external_id: p.ref_key.clone(),
        name,
        phone: p.phones.first().cloned(),
        email: p.emails.first().cloned(),
        digest: p.data_version.clone(),
    }
}

/// The standing work: each catalog pulled when due.
pub(crate) async fn poll(engine: &Engine, connector: &Connector) -> Result<Polled> {
    let cfg = OnecConfig::parse(&connector.config)?;
    let every = cfg.every();
    let last = connector.info.get("pulled_at").and_then(Value::as_i64).unwrap_or(0);
    let due_in = (last + every.as_millis() as i64 - okno_domain::time::now_ms()).max(0);
    if due_in > 0 {
        return Ok(Polled { outcome: Outcome::Done, again: std::time::Duration::from_millis(due_in as u64) });
    }
    let client = match cfg.client() {
        Ok(c) => c,
        Err(e) => return Ok(Polled { outcome: Outcome::Refused(e.to_string()), again: every }),
    };
    for map in cfg.maps() {
        let key = format!("onec:{}", map.entity_set);
        let cursor = match engine.store.connector_place(&connector.id, &key).await? {
            Some(text) => SyncCursor::decode(&text).unwrap_or_default(),
            None => SyncCursor::default(),
        };
        let pull = match client.pull(&map, &cursor).await {
            Ok(p) => p,
            Err(e) => {
                let detail = json!({"outcome": e.to_string()});
                engine.audit_connector_call(connector, "onec.odata.pull", &map.entity_set, detail).await;
                return Ok(Polled { outcome: outcome(e), again: every });
            }
        };
        let rows: Vec<SyncedContact> = pull
            .changes
            .iter()
            .filter_map(|c| match c {
                // A person marked for deletion stays in okno with their history; so does one
                // deleted for good.
                Change::Upserted { person, .. } if !person.deletion_mark => Some(synced(person)),
                _ => None,
            })
            .collect();
        for page in rows.chunks(MAX_SYNC_PAGE) {
            engine.store.sync_contacts(MARK, page.to_vec()).await?;
        }
        engine.store.keep_connector_place(&connector.id, &key, &pull.cursor.encode()).await?;
        let detail =
            json!({"scanned": pull.scanned, "changed": pull.changes.len(), "written": rows.len(), "outcome": "ok"});
        engine.audit_connector_call(connector, "onec.odata.pull", &map.entity_set, detail).await;
    }
    engine.keep_place(connector, "pulled_at", json!(okno_domain::time::now_ms())).await?;
    Ok(Polled { outcome: Outcome::Done, again: every })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_names_its_catalogs_by_preset_and_fields() {
        let good = json!({"api_base": "https://1c.local/base/odata/standard.odata", "user": "okno", "password": "p",
                          "catalogs": [{"preset": "employees"}, {"entity_set": "Catalog_Партнеры", "filter": ""}]});
        let cfg = OnecConfig::parse(&good).unwrap();
        let maps = cfg.maps();
        assert_eq!(maps[0].entity_set, "Catalog_Сотрудники");
        assert_eq!((maps[1].entity_set.as_str(), maps[1].name_field.as_str()), ("Catalog_Партнеры", "Description"));
        for (field, bad) in [
            ("catalogs", json!([{"preset": "suppliers"}])),
            ("catalogs", json!([{"no_such_field": "x"}])),
            ("every", json!(10)),
            ("user", json!(" ")),
            ("unknown", json!(1)),
        ] {
            let mut v = good.clone();
            v[field] = bad.clone();
            assert!(OnecConfig::parse(&v).is_err(), "{field}: {bad}");
        }
        let bare = json!({"api_base": "https://1c.local/b/odata/standard.odata", "user": "u", "password": ""});
        assert_eq!(OnecConfig::parse(&bare).unwrap().maps()[0].entity_set, "Catalog_Контрагенты");
    }
}
