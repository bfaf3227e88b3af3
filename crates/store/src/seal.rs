//! Secrets sealed at rest. The credentials okno keeps for others — a channel's token, password
//! or signing secret, an outgoing webhook's secret — are written to the database sealed with
//! XChaCha20-Poly1305 under a 32-byte key that is not in the database: `OKNO_SECRET_KEY`, or
//! the data folder's `secret.key`. A copy of the database alone (a stolen backup, a `-wal`
//! file) opens none of them.
//!
//! A sealed value is a string that says what it is: `sealed:v1:<key id>:<base64 of nonce and
//! ciphertext>`. The key id (the start of the key's SHA-256) tells which key sealed it, so a
//! wrong key is a clear message at start rather than garbage sent to a platform, and a value
//! written before sealing existed (plain) is told apart and sealed by [`crate::SqlStore::seal_secrets`].
//!
//! The store seals on write and opens on read: what it hands out holds the secrets in the
//! clear, for the adapters and the signing that need them; the API never returns them.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use okno_domain::{Error, Result};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// What starts every sealed value (version 1 of the format).
pub const SEALED_PREFIX: &str = "sealed:v1:";

/// The key file in the data folder, when `OKNO_SECRET_KEY` is not set.
pub const KEY_FILE: &str = "secret.key";

/// The previous key, kept while a rotation is under way (see [`key_files`]).
pub const OLD_KEY_FILE: &str = "secret.key.old";

/// The names of the secret fields of a channel's (or a connector's) config, at any depth (the
/// e-mail channel's `imap.password`): every kind's credentials, in one list. A field of one of
/// these names is sealed wherever it appears.
pub const SECRET_FIELDS: &[&str] = &[
    "token",
    "secret",
    "webhook_secret",
    "app_secret",
    "verify_token",
    "access_token",
    "password",
    "client_secret",
    "auth_token",
    "app_password",
    "api_id",
    "api_key",
    "refresh_token",
    "bind_password",
];

/// A 32-byte key and its id.
#[derive(Clone)]
pub struct SecretKey {
    bytes: [u8; 32],
    id: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A new random key.
    pub fn generate() -> Self {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&key);
        Self::from_bytes(bytes)
    }

    fn from_bytes(bytes: [u8; 32]) -> Self {
        let digest = Sha256::new_with_prefix(b"okno secret key id\0").chain_update(bytes).finalize();
        let id = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        Self { bytes, id }
    }

    /// A key written as base64 (standard or URL-safe, padded or not) of exactly 32 bytes.
    /// `origin` names where it came from, for the error.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = STANDARD
            .decode(text)
            .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
            .map_err(|_| bad_key(origin, "it is not base64"))?;
        let bytes: [u8; 32] = decoded
            .try_into()
            .map_err(|v: Vec<u8>| bad_key(origin, &format!("it is {} bytes, a key is 32", v.len())))?;
        Ok(Self::from_bytes(bytes))
    }

    /// The key as base64, as `OKNO_SECRET_KEY` and `secret.key` hold it.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    /// The key's id: 16 hex digits, safe to show and log.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.bytes.into())
    }
}

fn bad_key(origin: &str, why: &str) -> Error {
    Error::invalid(
        "invalid_secret_key",
        format!("{origin} is not a secret key: {why} (make one with `openssl rand -base64 32`)"),
    )
}

/// Seals with the current key and opens with it or, while a rotation finishes, the previous one.
#[derive(Debug, Clone)]
pub struct Sealer {
    current: SecretKey,
    previous: Option<SecretKey>,
}

/// How a stored value stands with a sealer.
#[derive(Debug, PartialEq, Eq)]
pub enum Standing {
    /// Written before sealing: to be sealed.
    Plain,
    /// Sealed under the current key.
    Current,
    /// Sealed under the previous key: to be sealed again under the current one.
    Previous,
    /// Sealed under a key this sealer does not have (its id).
    Unknown(String),
}

impl Sealer {
    pub fn new(current: SecretKey, previous: Option<SecretKey>) -> Self {
        let previous = previous.filter(|p| p.id != current.id);
        Self { current, previous }
    }

    /// The id of the key new values are sealed under.
    pub fn key_id(&self) -> &str {
        self.current.id()
    }

    /// The key new values are sealed under.
    pub fn current_key(&self) -> &SecretKey {
        &self.current
    }

    /// Whether a rotation is being finished (a previous key is held).
    pub fn has_previous(&self) -> bool {
        self.previous.is_some()
    }

    /// Where `value` stands.
    pub fn standing(&self, value: &str) -> Standing {
        let Some(rest) = value.strip_prefix(SEALED_PREFIX) else { return Standing::Plain };
        let id = rest.split(':').next().unwrap_or_default();
        if id == self.current.id {
            Standing::Current
        } else if self.previous.as_ref().is_some_and(|p| p.id == id) {
            Standing::Previous
        } else {
            Standing::Unknown(id.to_string())
        }
    }

    /// `plain` sealed under the current key (a fresh random nonce each time).
    pub fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encrypting into memory fails only past 256 GiB; a secret is a few bytes.
        let sealed = self.current.cipher().encrypt(&nonce, plain.as_bytes()).unwrap_or_default();
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        format!("{SEALED_PREFIX}{}:{}", self.current.id, URL_SAFE_NO_PAD.encode(body))
    }

    /// The plain text of a stored value; a plain value is returned as it is.
    pub fn open(&self, value: &str) -> Result<String> {
        let Some(rest) = value.strip_prefix(SEALED_PREFIX) else { return Ok(value.to_string()) };
        let (id, body) = rest.split_once(':').unwrap_or((rest, ""));
        let key = if id == self.current.id {
            &self.current
        } else if let Some(p) = self.previous.as_ref().filter(|p| p.id == id) {
            p
        } else {
            return Err(other_key(id, self.current.id()));
        };
        let damaged = || {
            Error::internal(format!(
                "a secret sealed under key {id} is damaged and cannot be opened; set it again (e.g. the channel's config)"
            ))
        };
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| damaged())?;
        if body.len() < 24 {
            return Err(damaged());
        }
        let (nonce, sealed) = body.split_at(24);
        let plain = key.cipher().decrypt(XNonce::from_slice(nonce), sealed).map_err(|_| damaged())?;
        String::from_utf8(plain).map_err(|_| damaged())
    }

    /// A stored value as it should be kept: plain and previous-key values sealed under the
    /// current key, current ones left as they are.
    pub fn reseal(&self, value: &str) -> Result<String> {
        match self.standing(value) {
            Standing::Current => Ok(value.to_string()),
            Standing::Plain => Ok(self.seal(value)),
            Standing::Previous => Ok(self.seal(&self.open(value)?)),
            Standing::Unknown(id) => Err(other_key(&id, self.current.id())),
        }
    }

    /// A config with every secret field ([`SECRET_FIELDS`]) as it should be kept.
    pub fn seal_config(&self, config: &Value) -> Result<Value> {
        map_secrets(config, &mut |v| self.reseal(v))
    }

    /// A config with every secret field opened.
    pub fn open_config(&self, config: &Value) -> Result<Value> {
        map_secrets(config, &mut |v| self.open(v))
    }
}

/// The error for a value sealed under a key okno was not given.
pub fn other_key(id: &str, current: &str) -> Error {
    Error::invalid(
        "secret_key_mismatch",
        format!(
            "the secrets were sealed under another key (id {id}); this okno has key {current}. Set OKNO_SECRET_KEY to \
             the key they were sealed with, or put back the data folder's secret.key it was started with"
        ),
    )
}

/// `config` with `f` applied to the string value of every secret field, at any depth.
fn map_secrets(config: &Value, f: &mut dyn FnMut(&str) -> Result<String>) -> Result<Value> {
    Ok(match config {
        Value::Object(map) => {
            let mut out = serde_json::Map::with_capacity(map.len());
            for (k, v) in map {
                let v = match v {
                    Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => Value::String(f(s)?),
                    other => map_secrets(other, f)?,
                };
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| map_secrets(v, f)).collect::<Result<_>>()?),
        other => other.clone(),
    })
}

/// The key file and the previous key's file in a data folder.
pub fn key_files(data_dir: &Path) -> (PathBuf, PathBuf) {
    (data_dir.join(KEY_FILE), data_dir.join(OLD_KEY_FILE))
}

/// Reads a key file.
pub fn read_key_file(path: &Path) -> Result<SecretKey> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid("invalid_secret_key", format!("cannot read `{}`: {e}", path.display())))?;
    SecretKey::parse(&text, &format!("`{}`", path.display()))
}

/// Writes a key file readable by its owner alone, replacing any in one step: the key goes to a
/// temporary file that is synced and renamed over the old one.
pub fn write_key_file(path: &Path, key: &SecretKey) -> Result<()> {
    let failed =
        |e: std::io::Error| Error::internal(format!("cannot write the secret key to `{}`: {e}", path.display()));
    let tmp = path.with_extension(format!("tmp-{}", okno_domain::ids::random_hex(6)));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(failed)?;
    let written = file
        .write_all(format!("{}\n", key.to_base64()).as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(failed(e));
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The data folder's key, made on first start, with the previous key if a rotation was cut
/// short; `bool`: whether the key was just made.
pub fn load_or_create(data_dir: &Path) -> Result<(Sealer, bool)> {
    let (path, old) = key_files(data_dir);
    let (key, made) = if path.exists() {
        (read_key_file(&path)?, false)
    } else {
        let key = SecretKey::generate();
        write_key_file(&path, &key)?;
        (key, true)
    };
    let previous = if old.exists() { Some(read_key_file(&old)?) } else { None };
    Ok((Sealer::new(key, previous), made))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_sealed_value_opens_with_its_key_only_and_says_which_key_it_needs() {
        let a = Sealer::new(SecretKey::generate(), None);
        let b = Sealer::new(SecretKey::generate(), None);
        let sealed = a.seal("123456:ABC-token");
        assert!(sealed.starts_with(&format!("sealed:v1:{}:", a.key_id())), "{sealed}");
        assert!(!sealed.contains("ABC"));
        assert_ne!(a.seal("123456:ABC-token"), sealed, "a fresh nonce every time");
        assert_eq!(a.open(&sealed).unwrap(), "123456:ABC-token");
        let err = b.open(&sealed).unwrap_err();
        assert_eq!(err.code, "secret_key_mismatch");
        assert!(err.message.contains(a.key_id()), "{}", err.message);
        assert_eq!(a.open("plain").unwrap(), "plain");
        // A flipped byte is refused, not decrypted into garbage.
        let mut damaged = sealed.clone().into_bytes();
        let last = damaged.len() - 2;
        damaged[last] = if damaged[last] == b'A' { b'B' } else { b'A' };
        assert!(a.open(&String::from_utf8(damaged).unwrap()).is_err());
    }

    #[test]
    fn configs_are_sealed_field_by_field_at_any_depth_and_resealed_under_a_new_key() {
        let old = Sealer::new(SecretKey::generate(), None);
        let config =
            json!({"token": "t-1", "mode": "polling", "imap": {"host": "mail", "password": "p-1"}, "port": 993});
        let sealed = old.seal_config(&config).unwrap();
        assert_eq!(sealed["mode"], "polling");
        assert_eq!(sealed["imap"]["host"], "mail");
        assert_eq!(sealed["port"], 993);
        assert!(sealed["token"].as_str().unwrap().starts_with(SEALED_PREFIX));
        assert!(sealed["imap"]["password"].as_str().unwrap().starts_with(SEALED_PREFIX));
        assert_eq!(old.seal_config(&sealed).unwrap(), sealed, "sealing twice changes nothing");
        assert_eq!(old.open_config(&sealed).unwrap(), config);
        let new_key = SecretKey::generate();
        let rotating = Sealer::new(new_key.clone(), Some(old.current.clone()));
        let resealed = rotating.seal_config(&sealed).unwrap();
        let new = Sealer::new(new_key, None);
        assert_eq!(new.open_config(&resealed).unwrap(), config);
        assert_eq!(old.open_config(&resealed).unwrap_err().code, "secret_key_mismatch");
    }

    #[test]
    fn keys_parse_from_base64_of_32_bytes_and_nothing_else() {
        let k = SecretKey::generate();
        assert_eq!(SecretKey::parse(&k.to_base64(), "x").unwrap().id(), k.id());
        assert_eq!(SecretKey::parse(&format!(" {}\n", k.to_base64()), "x").unwrap().id(), k.id());
        let short = SecretKey::parse("c2hvcnQ=", "OKNO_SECRET_KEY").unwrap_err();
        assert!(short.message.contains("OKNO_SECRET_KEY") && short.message.contains("32"), "{}", short.message);
        assert_eq!(SecretKey::parse("not base64!", "x").unwrap_err().code, "invalid_secret_key");
    }
}
