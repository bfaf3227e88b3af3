//! The attachment store: files on disk under the data folder, named by the SHA-256 of their
//! content (`files/ab/cdef…`), so the same file is kept once however often it is sent.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use okno_domain::signing::sha256_hex;

#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

impl FileStore {
    pub fn new(root: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    /// Stores `data` and returns its SHA-256. Writing goes to a temporary name first, so a
    /// crash never leaves a half-written file under a valid name.
    pub async fn put(&self, data: &[u8]) -> io::Result<String> {
        let sha = sha256_hex(data);
        let path = self.path(&sha)?;
        if tokio::fs::try_exists(&path).await.unwrap_or(false) {
            return Ok(sha);
        }
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        let tmp = path.with_extension(format!("tmp-{}", okno_domain::ids::random_hex(6)));
        tokio::fs::write(&tmp, data).await?;
        let file = tokio::fs::File::open(&tmp).await?;
        file.sync_all().await?;
        tokio::fs::rename(&tmp, &path).await?;
        Ok(sha)
    }

    pub async fn read(&self, sha: &str) -> io::Result<Bytes> {
        Ok(Bytes::from(tokio::fs::read(self.path(sha)?).await?))
    }

    /// Where a file lives; refuses anything that is not a SHA-256 in hex.
    pub fn path(&self, sha: &str) -> io::Result<PathBuf> {
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a content address"));
        }
        Ok(self.root.join(&sha[..2]).join(&sha[2..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stores_by_content_and_refuses_path_tricks() {
        let dir = std::env::temp_dir().join(format!("okno-files-{}", okno_domain::ids::new_id()));
        let files = FileStore::new(dir.clone()).unwrap();
        let a = files.put(b"hello").await.unwrap();
        let b = files.put(b"hello").await.unwrap();
        assert_eq!(a, b);
        assert_eq!(&files.read(&a).await.unwrap()[..], b"hello");
        assert!(files.path("../../etc/passwd").is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
