//! The data folder holds the database, the attachments and the secret key: nobody but okno's
//! own user may read it. It is created `0700`; a folder, database or stored file left
//! readable by the group or by everyone (made before okno set its umask, copied in, restored
//! from a backup) is tightened at start — folders to `0700`, files to `0600` — and the log
//! says how many.

use std::path::{Path, PathBuf};

use okno_domain::{Error, Result};

/// Creates the data folder if needed and takes group and world access away from it and from
/// everything in it, and from the SQLite database's files when they live elsewhere (`db`).
pub fn secure(data_dir: &Path, db: Option<&Path>) -> Result<()> {
    std::fs::create_dir_all(data_dir).map_err(|e| {
        Error::invalid("data_dir_unusable", format!("cannot create the data folder `{}`: {e}", data_dir.display()))
    })?;
    let mut tightened = Vec::new();
    tighten_tree(data_dir, &mut tightened)?;
    if let Some(db) = db.filter(|db| !db.starts_with(data_dir)) {
        for path in database_files(db) {
            if path.exists() {
                tighten(&path, &mut tightened)?;
            }
        }
    }
    if !tightened.is_empty() {
        tracing::warn!(
            count = tightened.len(),
            first = %tightened[0].display(),
            "other users could read {} files and folders of okno's data; they are now readable by okno's user alone",
            tightened.len()
        );
    }
    Ok(())
}

/// A SQLite database file and the files SQLite and okno keep beside it.
fn database_files(db: &Path) -> Vec<PathBuf> {
    let name = db.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    ["", "-wal", "-shm", "-journal", ".lock"]
        .iter()
        .map(|suffix| db.with_file_name(format!("{name}{suffix}")))
        .collect()
}

/// The folder and everything under it; symbolic links are left as they are (what they point
/// to is not okno's).
fn tighten_tree(dir: &Path, tightened: &mut Vec<PathBuf>) -> Result<()> {
    tighten(dir, tightened)?;
    let entries = std::fs::read_dir(dir).map_err(|e| unusable(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| unusable(dir, e))?;
        let kind = entry.file_type().map_err(|e| unusable(&entry.path(), e))?;
        if kind.is_dir() {
            tighten_tree(&entry.path(), tightened)?;
        } else if kind.is_file() {
            tighten(&entry.path(), tightened)?;
        }
    }
    Ok(())
}

#[cfg(unix)]
fn tighten(path: &Path, tightened: &mut Vec<PathBuf>) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| unusable(path, e))?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        return Ok(());
    }
    let wanted = if meta.is_dir() { 0o700 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)).map_err(|e| {
        Error::invalid(
            "data_dir_unusable",
            format!("`{}` is readable by other users and cannot be made private: {e}", path.display()),
        )
    })?;
    tightened.push(path.to_path_buf());
    Ok(())
}

#[cfg(not(unix))]
fn tighten(_path: &Path, _tightened: &mut Vec<PathBuf>) -> Result<()> {
    Ok(())
}

fn unusable(path: &Path, e: std::io::Error) -> Error {
    Error::invalid("data_dir_unusable", format!("cannot read `{}`: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn group_and_world_access_is_taken_away_and_private_files_are_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!("okno-datadir-{}", okno_domain::ids::new_id()));
        let files = root.join("files/ab");
        std::fs::create_dir_all(&files).unwrap();
        std::fs::write(root.join("okno.db"), b"db").unwrap();
        std::fs::write(files.join("cd"), b"file").unwrap();
        for (path, mode) in [(&root, 0o755), (&root.join("files"), 0o755), (&files, 0o750)] {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        std::fs::set_permissions(root.join("okno.db"), std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::set_permissions(files.join("cd"), std::fs::Permissions::from_mode(0o400)).unwrap();
        secure(&root, Some(&root.join("okno.db"))).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("files")), 0o700);
        assert_eq!(mode(&files), 0o700);
        assert_eq!(mode(&root.join("okno.db")), 0o600);
        assert_eq!(mode(&files.join("cd")), 0o400, "already private: left as it was");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
