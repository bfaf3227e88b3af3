//! An HTTPS site whose certificate a private CA signed (`openssl s_server -www` on 127.0.0.1),
//! for what okno trusts when it calls out: refused by default, trusted once the CA is given.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::slapd::{free_port, make_ca, run};

/// A running HTTPS site answering `GET /` with a status page.
pub struct TlsSite {
    /// `https://127.0.0.1:PORT/`
    pub url: String,
    /// The CA that signed the site's certificate (PEM).
    pub ca_file: PathBuf,
    dir: PathBuf,
    child: Child,
}

impl Drop for TlsSite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl TlsSite {
    /// Starts the site; `None` (with a note) when `openssl` is not installed.
    pub async fn start() -> Option<TlsSite> {
        if Command::new("openssl").arg("version").output().is_err() {
            eprintln!("skipped: no openssl");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("okno-tls-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_file = make_ca(&dir, "ca");
        std::fs::write(
            dir.join("site.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1\n",
        )
        .unwrap();
        run(Command::new("openssl").current_dir(&dir).args([
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "site.key",
            "-out",
            "site.csr",
            "-subj",
            "/CN=127.0.0.1",
        ]));
        run(Command::new("openssl").current_dir(&dir).args([
            "x509",
            "-req",
            "-in",
            "site.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "site.pem",
            "-days",
            "2",
            "-extfile",
            "site.ext",
        ]));
        let port = free_port();
        let mut child = Command::new("openssl")
            .current_dir(&dir)
            .args(["s_server", "-quiet", "-www", "-accept", &format!("127.0.0.1:{port}")])
            .args(["-cert", "site.pem", "-key", "site.key"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(TlsSite { url: format!("https://127.0.0.1:{port}/"), ca_file, dir, child });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("openssl s_server did not listen on {port}");
    }
}
