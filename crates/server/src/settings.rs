//! Configuration: defaults → `okno.toml` (or `--config`/`OKNO_CONFIG`) → `OKNO_*` environment,
//! typed and checked at start so a mistake is a clear message, not a surprise later.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use okno_domain::{Error, Result};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Everything okno reads from its configuration. Every field has a default: `okno serve`
/// works with none of it set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address and port the HTTP server listens on.
    pub listen: String,
    /// Folder for the SQLite database and the attachment store.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; default: SQLite in `data_dir`.
    pub database_url: Option<SecretString>,
    /// The base URL platforms and receivers use to reach okno (webhooks, file links).
    pub public_url: Option<String>,
    /// Allow outgoing HTTP to loopback/private addresses (webhooks, attachment URLs).
    pub allow_private_targets: bool,
    /// The key that seals the credentials okno keeps (channel tokens and passwords, webhook
    /// secrets): 32 bytes as base64. Default: the data folder's `secret.key`, made on first
    /// start.
    pub secret_key: Option<SecretString>,
    /// `info`, `debug`, `warn`… or a full tracing filter such as `okno=debug,info`.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: String,
    /// Time zone for dates in notifications when a contact has none (`attrs.tz`), e.g. `Europe/Moscow`.
    pub default_timezone: String,
    pub limits: Limits,
    pub delivery: Delivery,
    pub database: Database,
    /// Receiving by long polling, for every platform that offers it. `[telegram]` is its
    /// earlier name, still read.
    #[serde(alias = "telegram")]
    pub polling: Polling,
    pub ui: Ui,
    pub http: Http,
    pub templates: Templates,
    /// Operators signing in through an LDAP directory or Active Directory (off unless `url` is set).
    pub ldap: crate::directory::LdapSettings,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Reverse proxies (addresses or networks such as `10.0.0.0/8`) whose `X-Forwarded-For`
    /// names the client; from any other peer the header is ignored. Default: none.
    pub trusted_proxies: Vec<String>,
    /// Seconds a client has to send a request's headers; a slower one is disconnected.
    pub header_timeout_secs: u64,
    /// Seconds a client has to send a request's body, longer only while it keeps sending at
    /// `body_min_bytes_per_sec` on average; a slower one is disconnected.
    pub body_timeout_secs: u64,
    /// The average rate, in bytes per second, that earns a body more than `body_timeout_secs`.
    pub body_min_bytes_per_sec: u64,
    /// A PEM file of certificates okno trusts for its outgoing HTTPS (platforms, sites,
    /// business systems) besides the public web's roots: a national root a platform requires
    /// (MAX asks for the Russian Минцифры root) or a company's own CA. Default: none.
    pub extra_roots_file: Option<PathBuf>,
}

impl Http {
    /// The extra roots' PEM, read and checked (empty when none is set).
    pub fn extra_roots(&self) -> Result<Vec<u8>> {
        let Some(path) = &self.extra_roots_file else { return Ok(Vec::new()) };
        let pem = std::fs::read(path).map_err(|e| {
            Error::invalid("invalid_config", format!("http.extra_roots_file `{}`: {e}", path.display()))
        })?;
        okno_channel::http::extra_roots_of(&pem).map_err(|e| {
            Error::invalid("invalid_config", format!("http.extra_roots_file `{}`: {}", path.display(), e.message))
        })?;
        Ok(pem)
    }
}

impl Default for Http {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            header_timeout_secs: 30,
            body_timeout_secs: 30,
            body_min_bytes_per_sec: 1024,
            extra_roots_file: None,
        }
    }
}

/// Rendering templates (rules, broadcasts, bots, surveys, previews). Every render runs in a
/// worker process of its own, bounded in time, output and memory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Templates {
    /// Worker processes rendering at once.
    pub workers: usize,
    /// How long one message's templates may take to render, in ms; then the worker is killed.
    pub timeout_ms: u64,
    /// The longest text one template may produce, in bytes.
    pub max_output_bytes: usize,
    /// The memory one worker may take, in MB; a render that needs more kills its worker alone.
    pub max_memory_mb: u64,
    /// The okno binary started as `okno render-worker`: okno itself unless a program embedding
    /// the server (its tests) names it. Not read from the configuration.
    #[serde(skip)]
    pub worker_program: Option<PathBuf>,
}

impl Default for Templates {
    fn default() -> Self {
        Self { workers: 4, timeout_ms: 2_000, max_output_bytes: 65_536, max_memory_mb: 256, worker_program: None }
    }
}

/// The operator web UI.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Ui {
    /// A link from a contact's external id to its card in the business system; `{external_id}`
    /// is replaced by the id, URL-encoded. Default: no link.
    pub contact_url: Option<String>,
    /// Roles whose operators must sign in with a one-time code from an authenticator app as
    /// well as their password (e.g. `["admin"]`); one without an authenticator sets it up at
    /// their next sign-in. Any operator may turn it on for themselves. Default: none.
    pub two_factor_required_for: Vec<String>,
}

/// Receiving by long polling (Telegram's `getUpdates`, and the like on other platforms).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Polling {
    /// How long one poll waits for updates, in seconds (each platform caps it: Telegram at 50).
    pub poll_timeout_secs: u64,
    /// How often okno looks for bots to poll (new channels, a poller lost elsewhere), in ms.
    pub poller_check_ms: u64,
    /// How long a poller waits after a conflict (a webhook set, another poller), in seconds.
    pub conflict_wait_secs: u64,
}

impl Default for Polling {
    fn default() -> Self {
        Self { poll_timeout_secs: 25, poller_check_ms: 2_000, conflict_wait_secs: 30 }
    }
}

/// Size limits.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest JSON body the API and hooks accept, in bytes.
    pub max_body_bytes: usize,
    /// Largest attachment okno accepts or downloads, in bytes.
    pub max_attachment_bytes: usize,
}

/// The delivery engine.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Delivery {
    /// Jobs this process works on at once.
    pub workers: usize,
    /// Broadcast sends this process works on at once, besides `workers`.
    pub bulk_workers: usize,
    /// Seconds a claimed job stays leased before another process may take it over.
    pub lease_secs: u64,
    /// How often idle workers look for work queued by other processes, in ms.
    pub poll_interval_ms: u64,
    /// Attempts before an outbound message is marked failed.
    pub send_max_attempts: i64,
    /// Attempts before an outgoing webhook delivery is marked failed.
    pub webhook_max_attempts: i64,
    /// First retry delay in ms; doubles each attempt (with jitter).
    pub retry_base_ms: u64,
    /// Longest retry delay in ms.
    pub retry_max_ms: u64,
    /// Timeout of one outgoing HTTP request, in seconds.
    pub http_timeout_secs: u64,
    /// How long shutdown waits for in-flight jobs, in seconds.
    pub shutdown_grace_secs: u64,
}

/// Database connections.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Database {
    /// Connections for reads (SQLite) or for everything (PostgreSQL).
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503, in ms.
    pub acquire_timeout_ms: u64,
    /// How long SQLite waits on a lock before failing with 503, in ms.
    pub busy_timeout_ms: u64,
    /// SQLite durability: `normal` (an acknowledged message survives a killed process; the
    /// default) or `full` (it also survives a power cut, at some cost in throughput).
    pub sqlite_sync: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./okno-data"),
            database_url: None,
            public_url: None,
            allow_private_targets: false,
            secret_key: None,
            log_level: "info".into(),
            log_format: "text".into(),
            default_timezone: "UTC".into(),
            limits: Limits::default(),
            delivery: Delivery::default(),
            database: Database::default(),
            polling: Polling::default(),
            ui: Ui::default(),
            http: Http::default(),
            templates: Templates::default(),
            ldap: crate::directory::LdapSettings::default(),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self { max_body_bytes: 1024 * 1024, max_attachment_bytes: 20 * 1024 * 1024 }
    }
}

impl Default for Delivery {
    fn default() -> Self {
        Self {
            workers: 64,
            bulk_workers: 8,
            lease_secs: 60,
            poll_interval_ms: 500,
            send_max_attempts: 10,
            webhook_max_attempts: 80,
            retry_base_ms: 1_000,
            retry_max_ms: 3_600_000,
            http_timeout_secs: 30,
            shutdown_grace_secs: 10,
        }
    }
}

impl Default for Database {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout_ms: 5_000, busy_timeout_ms: 5_000, sqlite_sync: "normal".into() }
    }
}

/// The documented example configuration printed by `okno default-config`.
pub const EXAMPLE: &str = include_str!("../okno.example.toml");

impl Settings {
    /// Loads the configuration. `path`: an explicit file (must exist); otherwise `./okno.toml`
    /// if present.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut fig = Figment::new();
        match path {
            Some(p) => {
                if !p.exists() {
                    return Err(Error::invalid(
                        "config_missing",
                        format!("the config file `{}` does not exist", p.display()),
                    ));
                }
                fig = fig.merge(Toml::file(p));
            }
            None => fig = fig.merge(Toml::file("okno.toml")),
        }
        fig = fig.merge(Env::prefixed("OKNO_").split("__").ignore(&["config"]));
        let settings: Settings = fig.extract().map_err(|e| {
            let msgs: Vec<String> = e.into_iter().map(|e| e.to_string()).collect();
            Error::invalid("invalid_config", format!("invalid configuration: {}", msgs.join("; ")))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<()> {
        self.listen_addr()?;
        okno_store::sql_backend_of(&self.database_url())?;
        if let Some(key) = &self.secret_key {
            okno_store::seal::SecretKey::parse(key.expose_secret(), "OKNO_SECRET_KEY (secret_key)")?;
        }
        if let Some(p) = &self.public_url {
            let u =
                url::Url::parse(p).map_err(|e| Error::invalid("invalid_config", format!("public_url `{p}`: {e}")))?;
            if !matches!(u.scheme(), "http" | "https") {
                return Err(Error::invalid(
                    "invalid_config",
                    format!("public_url `{p}` must start with http:// or https://"),
                ));
            }
        }
        if !["text", "json"].contains(&self.log_format.as_str()) {
            return Err(Error::invalid(
                "invalid_config",
                format!("log_format `{}`: expected `text` or `json`", self.log_format),
            ));
        }
        if jiff::tz::TimeZone::get(&self.default_timezone).is_err() {
            return Err(Error::invalid(
                "invalid_config",
                format!("default_timezone `{}` is not a known time zone", self.default_timezone),
            ));
        }
        if !["normal", "full"].contains(&self.database.sqlite_sync.as_str()) {
            return Err(Error::invalid(
                "invalid_config",
                format!("database.sqlite_sync `{}`: expected `normal` or `full`", self.database.sqlite_sync),
            ));
        }
        if let Some(u) = &self.ui.contact_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || !u.contains("{external_id}") {
                return Err(Error::invalid(
                    "invalid_config",
                    format!("ui.contact_url `{u}` must be an http(s) URL containing {{external_id}}"),
                ));
            }
        }
        crate::client_addr::TrustedProxies::parse(&self.http.trusted_proxies)?;
        self.http.extra_roots()?;
        self.ldap.validate()?;
        if self.http.header_timeout_secs == 0 || self.http.body_timeout_secs == 0 {
            return Err(Error::invalid(
                "invalid_config",
                "http.header_timeout_secs and http.body_timeout_secs must be at least 1",
            ));
        }
        if self.limits.max_body_bytes < 1024 || self.limits.max_attachment_bytes < 1024 {
            return Err(Error::invalid("invalid_config", "limits must be at least 1024 bytes"));
        }
        if self.delivery.workers == 0
            || self.delivery.bulk_workers == 0
            || self.delivery.send_max_attempts < 1
            || self.delivery.webhook_max_attempts < 1
        {
            return Err(Error::invalid(
                "invalid_config",
                "delivery.workers, delivery.bulk_workers and the max attempts must be at least 1",
            ));
        }
        let t = &self.templates;
        if t.workers == 0 || t.timeout_ms < 10 || t.max_output_bytes < 1024 || t.max_memory_mb < 32 {
            return Err(Error::invalid(
                "invalid_config",
                "templates: workers at least 1, timeout_ms at least 10, max_output_bytes at least 1024, \
                 max_memory_mb at least 32",
            ));
        }
        Ok(())
    }

    pub fn listen_addr(&self) -> Result<SocketAddr> {
        self.listen.parse().map_err(|_| {
            Error::invalid("invalid_config", format!("listen `{}` is not an address like 127.0.0.1:8080", self.listen))
        })
    }

    /// The database URL, defaulting to SQLite in the data folder.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(u) => u.expose_secret().to_string(),
            None => format!("sqlite://{}/okno.db", self.data_dir.display()),
        }
    }

    /// The SQLite database file, when the database is SQLite.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = self.database_url();
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let path = path.split_once('?').map_or(path, |(p, _)| p);
        (!path.is_empty()).then(|| PathBuf::from(path))
    }

    /// The public base URL, defaulting to the listen address.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        self.public_url.clone().unwrap_or_else(|| format!("http://{bound}")).trim_end_matches('/').to_string()
    }

    pub fn store_options(&self) -> okno_store::StoreOptions {
        okno_store::StoreOptions {
            busy_timeout_ms: self.database.busy_timeout_ms,
            sqlite_full_sync: self.database.sqlite_sync == "full",
            acquire_timeout_ms: self.database.acquire_timeout_ms,
            max_connections: self.database.max_connections,
            sealer: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_roots_file_that_is_missing_or_holds_no_certificate_is_refused_at_start() {
        let dir = std::env::temp_dir().join(format!("okno-roots-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").unwrap();
        for (path, says) in [(dir.join("absent.pem"), "absent.pem"), (junk, "no PEM certificate")] {
            let mut s = Settings::default();
            s.http.extra_roots_file = Some(path);
            let err = s.validate().unwrap_err();
            assert!(err.message.contains("http.extra_roots_file") && err.message.contains(says), "{}", err.message);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_polling_section_is_still_read_by_its_earlier_name() {
        let parsed: Settings =
            Figment::new().merge(Toml::string("[telegram]\npoll_timeout_secs = 7\n")).extract().unwrap();
        assert_eq!(parsed.polling.poll_timeout_secs, 7);
        let parsed: Settings =
            Figment::new().merge(Toml::string("[polling]\nconflict_wait_secs = 3\n")).extract().unwrap();
        assert_eq!(parsed.polling.conflict_wait_secs, 3);
    }

    #[test]
    fn the_example_config_parses_to_the_defaults() {
        let parsed: Settings = Figment::new().merge(Toml::string(EXAMPLE)).extract().unwrap();
        let d = Settings::default();
        assert_eq!(parsed.listen, d.listen);
        assert_eq!(parsed.data_dir, d.data_dir);
        assert_eq!(parsed.limits, d.limits);
        assert_eq!(parsed.delivery, d.delivery);
        assert_eq!(parsed.database, d.database);
        assert_eq!(parsed.polling, d.polling);
        assert_eq!(parsed.ui, d.ui);
        assert_eq!(parsed.http, d.http);
        assert_eq!(parsed.templates, d.templates);
        assert_eq!(parsed.log_level, d.log_level);
    }

    #[test]
    fn a_wrong_database_scheme_is_an_error_not_a_new_file() {
        let s = Settings { database_url: Some(SecretString::from("mysq://localhost/okno")), ..Default::default() };
        let err = s.validate().unwrap_err();
        assert_eq!(err.code, "unsupported_database_url");
        assert!(err.message.contains("mysq"), "{}", err.message);
    }

    #[test]
    fn typos_in_the_file_are_reported() {
        let err = Figment::new().merge(Toml::string("lisen = \"0.0.0.0:1\"")).extract::<Settings>().unwrap_err();
        assert!(err.to_string().contains("lisen"), "{err}");
    }

    #[test]
    fn sqlite_durability_is_checked() {
        let mut s = Settings::default();
        s.database.sqlite_sync = "sometimes".into();
        assert!(s.validate().unwrap_err().message.contains("sqlite_sync"));
        s.database.sqlite_sync = "full".into();
        assert!(s.store_options().sqlite_full_sync);
    }

    #[test]
    fn a_secret_key_that_is_not_32_bytes_of_base64_is_refused_at_start() {
        let s = Settings { secret_key: Some(SecretString::from("too-short")), ..Default::default() };
        let err = s.validate().unwrap_err();
        assert_eq!(err.code, "invalid_secret_key");
        assert!(err.message.contains("OKNO_SECRET_KEY"), "{}", err.message);
        let key = okno_store::seal::SecretKey::generate().to_base64();
        Settings { secret_key: Some(SecretString::from(key)), ..Default::default() }.validate().unwrap();
    }

    #[test]
    fn zero_config_means_sqlite_in_the_data_dir() {
        let s = Settings::default();
        assert_eq!(s.database_url(), "sqlite://./okno-data/okno.db");
        assert_eq!(s.listen_addr().unwrap().to_string(), "127.0.0.1:8080");
    }
}
