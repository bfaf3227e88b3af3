//! The key that seals the credentials okno keeps ([`okno_store::seal`]): where it comes from,
//! sealing what an older okno left plain at start, and rotating it (`okno secrets rotate`).
//!
//! The key is `OKNO_SECRET_KEY` (`secret_key` in okno.toml) when set, and otherwise the data
//! folder's `secret.key`, made (0600) on first start. A rotation with the key file writes the
//! old key to `secret.key.old` and the new one over `secret.key` before it seals anything
//! again, and removes `secret.key.old` only once every secret is under the new key; a start
//! that finds `secret.key.old` (a rotation cut short) finishes the work itself.

use std::path::Path;
use std::sync::Arc;

use okno_domain::{Error, Result};
use okno_store::seal::{self, Sealer, SecretKey};
use okno_store::SqlStore;
use secrecy::ExposeSecret;

use crate::Settings;

/// Where the key is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `OKNO_SECRET_KEY` / `secret_key`.
    Setting,
    /// The data folder's `secret.key`.
    File,
}

/// The sealer the settings name, and whether the key file was just made.
fn sealer_for(settings: &Settings) -> Result<(Sealer, KeySource, bool)> {
    match &settings.secret_key {
        Some(key) => {
            let key = SecretKey::parse(key.expose_secret(), "OKNO_SECRET_KEY (secret_key)")?;
            Ok((Sealer::new(key, None), KeySource::Setting, false))
        }
        None => {
            let (sealer, made) = seal::load_or_create(&settings.data_dir)?;
            if made {
                tracing::info!(
                    key_id = sealer.key_id(),
                    "made the key that seals stored credentials: {} (back it up apart from the database)",
                    seal::key_files(&settings.data_dir).0.display()
                );
            }
            Ok((sealer, KeySource::File, made))
        }
    }
}

/// Opens (and migrates) the store with its secrets sealed: plain ones an older okno wrote are
/// sealed now, a rotation cut short is finished, and a key that is not the one the secrets were
/// sealed under stops the start with `secret_key_mismatch`.
pub async fn open_sealed(settings: &Settings) -> Result<SqlStore> {
    crate::data_dir::secure(&settings.data_dir, settings.sqlite_file().as_deref())?;
    let (sealer, source, made) = sealer_for(settings)?;
    let sealer = Arc::new(sealer);
    let mut options = settings.store_options();
    options.sealer = Some(sealer.clone());
    let store = SqlStore::open(&settings.database_url(), options).await?;
    match store.seal_secrets().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(count = n, key_id = sealer.key_id(), "sealed stored credentials under the key"),
        Err(e) => {
            store.close().await;
            if made {
                // A key made a moment ago seals nothing yet: remove it, so that the one the
                // secrets need can be put back in its place.
                let _ = std::fs::remove_file(seal::key_files(&settings.data_dir).0);
            }
            return Err(e);
        }
    }
    if source == KeySource::File && sealer.has_previous() {
        remove_old_key(&settings.data_dir)?;
        tracing::info!(key_id = sealer.key_id(), "finished a key rotation that was cut short");
    }
    Ok(store)
}

/// A setting that may be sealed (`okno secrets seal`): a `sealed:` value opened with okno's
/// key, a plain one as it is. `name` says which setting, for the error.
pub fn open_setting(settings: &Settings, value: &str, name: &str) -> Result<String> {
    if !value.starts_with(seal::SEALED_PREFIX) {
        return Ok(value.to_string());
    }
    let (sealer, _, _) = sealer_for(settings)?;
    sealer.open(value).map_err(|e| Error::new(e.kind, e.code, format!("{name}: {}", e.message)))
}

/// `okno secrets seal`: `plain` sealed under okno's key, for a setting such as
/// `ldap.bind_password` (the key file is made if there is none yet).
pub fn seal_setting(settings: &Settings, plain: &str) -> Result<(String, String)> {
    if settings.secret_key.is_none() {
        crate::data_dir::secure(&settings.data_dir, None)?;
    }
    let (sealer, _, _) = sealer_for(settings)?;
    Ok((sealer.seal(plain), sealer.key_id().to_string()))
}

fn remove_old_key(data_dir: &Path) -> Result<()> {
    let old = seal::key_files(data_dir).1;
    std::fs::remove_file(&old)
        .map_err(|e| Error::internal(format!("every secret is under the new key, but `{}`: {e}", old.display())))
}

/// What a rotation did.
#[derive(Debug)]
pub struct Rotated {
    pub old_id: String,
    pub new_id: String,
    /// Stored values sealed again.
    pub resealed: usize,
    pub source: KeySource,
}

/// `okno secrets rotate`: seals every stored secret under a new key in one transaction, with
/// okno stopped (refused with `database_in_use` while one runs on the database). `new_key`:
/// the key to move to; `None` makes one — which needs the key file, since okno cannot change
/// its own environment: with `OKNO_SECRET_KEY` the new key must be given.
pub async fn rotate(settings: &Settings, new_key: Option<SecretKey>) -> Result<Rotated> {
    if settings.secret_key.is_some() && new_key.is_none() {
        return Err(Error::invalid(
            "new_key_needed",
            "the key is OKNO_SECRET_KEY, which okno cannot change: give the new key on standard input \
             (okno secrets rotate --new-key-stdin), then set OKNO_SECRET_KEY to it",
        ));
    }
    let store = open_sealed(settings).await?;
    let outcome = rotate_open(settings, &store, new_key).await;
    store.close().await;
    outcome
}

async fn rotate_open(settings: &Settings, store: &SqlStore, new_key: Option<SecretKey>) -> Result<Rotated> {
    store.hold_alone("okno secrets rotate").await?;
    let (old, source, _) = sealer_for(settings)?;
    let old_key = old.current_key().clone();
    let new_key = new_key.unwrap_or_else(SecretKey::generate);
    if new_key.id() == old_key.id() {
        return Err(Error::invalid("same_key", "the new key is the key okno has now"));
    }
    let rotating = Sealer::new(new_key.clone(), Some(old_key.clone()));
    if source == KeySource::File {
        let (path, old_path) = seal::key_files(&settings.data_dir);
        seal::write_key_file(&old_path, &old_key)?;
        seal::write_key_file(&path, &new_key)?;
    }
    let resealed = store.seal_secrets_with(&rotating).await?;
    if source == KeySource::File {
        remove_old_key(&settings.data_dir)?;
    }
    Ok(Rotated { old_id: old_key.id().to_string(), new_id: new_key.id().to_string(), resealed, source })
}
