//! A throwaway mail server for the e-mail channel's tests: Debian's Postfix (package `postfix`)
//! takes mail over SMTP and hands it over LMTP to Debian's Dovecot (packages `dovecot-imapd`,
//! `dovecot-lmtpd`), which keeps it in Maildirs and serves it over IMAP. Both run from a
//! temporary folder with their own configuration, queue and mail, on free ports of 127.0.0.1:
//!
//! ```text
//! test ──SMTP──▶ postfix smtpd ──▶ queue ──LMTP (unix socket)──▶ dovecot lmtp ──▶ Maildir
//!        (plain + STARTTLS, implicit TLS)                                        │
//! okno ◀──IMAP (plain + STARTTLS, implicit TLS)── dovecot imap ◀──────────────────┘
//! ```
//!
//! Only mail for the test domains ([`DOMAINS`]) is taken, from anyone on 127.0.0.1 without
//! authentication (authentication with a mailbox's password is offered and optional). Any other
//! recipient is refused at `RCPT` ("Relay access denied"), and Postfix has no way out: no relay
//! host, no DNS, and its `smtp` and `relay` transports are the `error` daemon. An unknown mailbox
//! at a test domain is refused by Dovecot at LMTP time, so the sender gets a bounce, as from a
//! real provider.
//!
//! Mailboxes are Dovecot passwd-files, one per address, added at run time by
//! [`MailServer::create_mailbox`]; Dovecot reads a new one at the first login, so nothing
//! restarts. The server's certificate is signed by a CA made for it ([`MailServer::cert_pem`]).
//!
//! A busy or refusing server is played on cue: [`MailServer::refuse_next`] makes Postfix
//! answer the next mail to an address at `RCPT TO` with a given 4xx or 5xx reply (a `tcp:`
//! lookup table served by the test process).
//!
//! One server per test process ([`MailServer::shared`]); tests keep apart by making their own
//! mailboxes ([`unique_address`]). The daemons are killed and the folder removed when the test
//! process ends, however it ends: a small watchdog process (its own process group, so Ctrl-C
//! does not take it down first) waits for its stdin, a pipe only the test process holds, to close.
//!
//! Postfix's master runs only as root; without root, or without the packages, a test is
//! skipped with a note, unless `MAIL_TEST_REQUIRED=1` (set by `.ci/run`), which makes it a
//! failure. `POSTFIX_MASTER` and `DOVECOT` override the programs' paths.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::slapd::{free_port, make_ca, make_server_cert, run};

/// The domains the server takes mail for.
pub const DOMAINS: [&str; 2] = ["okno.test", "shop.test"];

/// How long the helpers wait for a message or a daemon.
const PATIENCE: Duration = Duration::from_secs(15);

/// A fresh address at `domain` no other test uses: `<prefix>-<12 random hex>@<domain>`, as
/// short as a real mailbox's name, so okno's tagged reply address fits beside it.
pub fn unique_address(prefix: &str, domain: &str) -> String {
    format!("{prefix}-{}@{domain}", okno_domain::ids::random_hex(6))
}

/// How a client reaches Dovecot's IMAP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImapSecurity {
    /// Plain text on [`MailServer::imap_addr`] (Dovecot allows a plain-text login here).
    Plain,
    /// `STARTTLS` on [`MailServer::imap_addr`], then the login.
    StartTls,
    /// TLS from the first byte on [`MailServer::imaps_addr`] (993-style).
    Tls,
}

/// A running Postfix and Dovecot.
pub struct MailServer {
    smtp: SocketAddr,
    smtps: SocketAddr,
    imap: SocketAddr,
    imaps: SocketAddr,
    cert_pem: String,
    ca_file: PathBuf,
    dir: PathBuf,
    passwords: Mutex<HashMap<String, String>>,
    refusals: Refusals,
    postfix: Child,
    dovecot: Child,
    watchdog: Child,
}

impl Drop for MailServer {
    fn drop(&mut self) {
        // Closing the watchdog's stdin makes it kill both daemons and remove the folder.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
        let _ = self.postfix.wait();
        let _ = self.dovecot.wait();
    }
}

fn program(var: &str, default: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()))
}

fn required() -> bool {
    std::env::var("MAIL_TEST_REQUIRED").is_ok_and(|v| v == "1")
}

/// `None` when the server can run here, else why not.
fn missing(master: &Path, dovecot: &Path) -> Option<String> {
    for (path, package) in [(master, "postfix"), (dovecot, "dovecot-imapd dovecot-lmtpd")] {
        if !path.exists() {
            return Some(format!("no {} (apt-get install -y {package})", path.display()));
        }
    }
    if !Path::new("/usr/lib/dovecot/lmtp").exists() {
        return Some("no Dovecot LMTP (apt-get install -y dovecot-lmtpd)".into());
    }
    // /proc/self belongs to the process's effective user.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        return Some("not root (Postfix's master runs only as root)".into());
    }
    None
}

impl MailServer {
    /// The server of this test process, started by the first caller; `None` (with a note) when
    /// it cannot run here and `MAIL_TEST_REQUIRED` is not `1`.
    pub fn shared() -> Option<&'static MailServer> {
        static SERVER: OnceLock<Option<MailServer>> = OnceLock::new();
        let server = SERVER.get_or_init(MailServer::start).as_ref();
        if server.is_none() {
            eprintln!("skipped: no mail server (see above); set MAIL_TEST_REQUIRED=1 to fail instead");
        }
        server
    }

    /// Starts a server of its own, stopped on drop; `None` (with a note) when it cannot run here
    /// and `MAIL_TEST_REQUIRED` is not `1`.
    pub fn start() -> Option<MailServer> {
        let master = program("POSTFIX_MASTER", "/usr/lib/postfix/sbin/master");
        let dovecot = program("DOVECOT", "/usr/sbin/dovecot");
        if let Some(why) = missing(&master, &dovecot) {
            if required() {
                panic!("MAIL_TEST_REQUIRED=1 but the mail server cannot run: {why}");
            }
            eprintln!("skipped: no mail server: {why}; set MAIL_TEST_REQUIRED=1 to fail instead");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("okno-mail-{}", okno_domain::ids::new_id()));
        for sub in ["postfix", "queue", "data", "dovecot", "dovecot-state", "mail", "users"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        run(Command::new("chown").arg("postfix").arg(dir.join("data")));
        run(Command::new("chown").arg("dovecot:dovecot").arg(dir.join("mail")));
        let (ca_file, cert, key) = certificate(&dir);
        let ports = Ports { smtp: free_port(), smtps: free_port(), imap: free_port(), imaps: free_port() };
        let (refusals, table) = Refusals::serve();
        std::fs::write(dir.join("postfix/main.cf"), postfix_main_cf(&dir, &cert, &key, table)).unwrap();
        std::fs::write(dir.join("postfix/master.cf"), postfix_master_cf(&ports)).unwrap();
        std::fs::write(dir.join("dovecot.conf"), dovecot_conf(&dir, &cert, &key, &ports)).unwrap();
        // Postfix waits, in steps of 0.3 s, until a configuration file is at least a second old
        // (it could still be being written); backdating spares that wait.
        let past = std::time::SystemTime::now() - Duration::from_secs(10);
        for file in ["postfix/main.cf", "postfix/master.cf"] {
            std::fs::File::options().append(true).open(dir.join(file)).unwrap().set_modified(past).unwrap();
        }
        make_queue(&dir.join("queue"));
        let postfix = Command::new(&master)
            .arg("-c")
            .arg(dir.join("postfix"))
            // In the foreground, so the test process holds it.
            .arg("-d")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("postfix.out")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", master.display()));
        let dovecot_child = Command::new(&dovecot)
            .arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("dovecot.out")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", dovecot.display()));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(postfix.id().to_string())
            .arg(dovecot_child.id().to_string())
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("sh");
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let me = MailServer {
            smtp: at(ports.smtp),
            smtps: at(ports.smtps),
            imap: at(ports.imap),
            imaps: at(ports.imaps),
            cert_pem: std::fs::read_to_string(&ca_file).unwrap(),
            ca_file,
            dir,
            passwords: Mutex::new(HashMap::new()),
            refusals,
            postfix,
            dovecot: dovecot_child,
            watchdog,
        };
        let deadline = Instant::now() + PATIENCE;
        for addr in [me.smtp, me.smtps, me.imap, me.imaps] {
            while TcpStream::connect(addr).is_err() {
                assert!(Instant::now() < deadline, "the mail server did not listen on {addr}: {}", me.log_text());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        while !me.dir.join("lmtp").exists() {
            assert!(Instant::now() < deadline, "Dovecot made no LMTP socket: {}", me.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(me)
    }

    /// Postfix's SMTP: plain, `STARTTLS` offered, `AUTH` offered and optional.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.smtp
    }

    /// Postfix's SMTP over TLS from the first byte (465-style).
    pub fn smtps_addr(&self) -> SocketAddr {
        self.smtps
    }

    /// Dovecot's IMAP: plain, `STARTTLS` offered; a plain-text login is allowed.
    pub fn imap_addr(&self) -> SocketAddr {
        self.imap
    }

    /// Dovecot's IMAP over TLS from the first byte (993-style).
    pub fn imaps_addr(&self) -> SocketAddr {
        self.imaps
    }

    /// The CA certificate (PEM) that signed the servers' certificate, for `127.0.0.1` and
    /// `localhost`: what a client must trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// [`MailServer::cert_pem`] as a file.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// What Postfix and Dovecot logged so far.
    pub fn log_text(&self) -> String {
        ["postfix.log", "postfix.out", "dovecot.log", "dovecot.out"]
            .iter()
            .map(|f| std::fs::read_to_string(self.dir.join(f)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Adds a mailbox (login: the whole address) at a test domain. Each address once.
    pub fn create_mailbox(&self, address: &str, password: &str) {
        let address = address.to_lowercase();
        let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        assert!(DOMAINS.contains(&domain), "{address}: not at a test domain ({DOMAINS:?})");
        assert!(!address.contains([':', '\n', ' ']) && !password.contains([':', '\n']), "{address}: a bad line");
        let mut passwords = self.passwords.lock().unwrap();
        assert!(!passwords.contains_key(&address), "{address}: already a mailbox");
        // One passwd-file per mailbox: Dovecot looks at a file at most once a second, so a line
        // added to a shared file could go unseen for that long; a new file is read at once.
        std::fs::write(self.dir.join("users").join(&address), format!("{address}:{{PLAIN}}{password}\n")).unwrap();
        passwords.insert(address, password.to_string());
    }

    fn password(&self, address: &str) -> String {
        let passwords = self.passwords.lock().unwrap();
        passwords.get(&address.to_lowercase()).cloned().unwrap_or_else(|| panic!("{address}: no such mailbox"))
    }

    /// Hands `message` (raw RFC 5322, CRLF or LF line ends) to Postfix over plain SMTP, as a
    /// mail server on the Internet would: `Err` holds the reply of a refusal.
    pub async fn deliver(&self, message: &[u8], from: &str, to: &[&str]) -> Result<(), String> {
        let (addr, message, from) = (self.smtp, message.to_vec(), from.to_string());
        let to: Vec<String> = to.iter().map(|t| t.to_string()).collect();
        tokio::task::spawn_blocking(move || smtp_send(addr, &message, &from, &to)).await.unwrap()
    }

    /// Makes Postfix answer the next mail to `address` at `RCPT TO` with `reply` (`450 4.7.1
    /// Try again later`, `550 5.1.1 No such user`), once: a busy or refusing server, on cue.
    pub fn refuse_next(&self, address: &str, reply: &str) {
        self.refusals.push(address, reply);
    }

    /// The messages of `address`'s INBOX, raw and in UID order, read over plain IMAP without
    /// marking them seen.
    pub async fn fetch_all(&self, address: &str, password: &str) -> Vec<Vec<u8>> {
        self.fetch_all_over(ImapSecurity::Plain, address, password).await
    }

    /// [`MailServer::fetch_all`] over the given kind of connection.
    pub async fn fetch_all_over(&self, security: ImapSecurity, address: &str, password: &str) -> Vec<Vec<u8>> {
        let (imap, login) = (self.imap_session(security), (address.to_string(), password.to_string()));
        tokio::task::spawn_blocking(move || imap(&login.0, &login.1)?.fetch_all()).await.unwrap().unwrap()
    }

    /// Waits until `address`'s INBOX holds at least `n` messages and returns them all, as
    /// [`MailServer::fetch_all`]; panics after 15 seconds with the servers' log.
    pub async fn wait_for(&self, address: &str, n: usize) -> Vec<Vec<u8>> {
        let password = self.password(address);
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.fetch_all(address, &password).await;
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{address}: {} of {n} messages after {PATIENCE:?}; the servers' log:\n{}",
                got.len(),
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The UIDVALIDITY of `address`'s INBOX.
    pub async fn uidvalidity(&self, address: &str) -> u32 {
        let (imap, address, password) =
            (self.imap_session(ImapSecurity::Plain), address.to_string(), self.password(address));
        tokio::task::spawn_blocking(move || imap(&address, &password)?.uidvalidity()).await.unwrap().unwrap()
    }

    /// How many messages `address`'s INBOX holds (IMAP `STATUS`, nothing fetched).
    pub async fn count(&self, address: &str) -> usize {
        let (imap, address, password) =
            (self.imap_session(ImapSecurity::Plain), address.to_string(), self.password(address));
        tokio::task::spawn_blocking(move || imap(&address, &password)?.messages()).await.unwrap().unwrap() as usize
    }

    /// Makes Dovecot give `address`'s INBOX a new UIDVALIDITY while keeping its messages, as
    /// after a provider restores a mailbox: the Maildir's UID list and indexes are removed, the
    /// messages' files stay. The new UIDs follow the files' order on disk, which need not be the
    /// order of arrival. Run it while no client has the mailbox open.
    pub fn reset_uidvalidity(&self, address: &str) {
        let address = address.to_lowercase();
        let (local, domain) = address.rsplit_once('@').unwrap_or_else(|| panic!("{address}: not an address"));
        let maildir = self.dir.join("mail").join(domain).join(local).join("Maildir");
        let entries = std::fs::read_dir(&maildir).unwrap_or_else(|e| panic!("{}: {e}", maildir.display()));
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            // dovecot-uidvalidity* stays: it is where the next UIDVALIDITY comes from.
            if name == "dovecot-uidlist" || name.starts_with("dovecot.index") {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }

    /// A function that logs into IMAP the given way.
    fn imap_session(&self, security: ImapSecurity) -> impl FnOnce(&str, &str) -> Result<Imap, String> + Send + 'static {
        let addr = if security == ImapSecurity::Tls { self.imaps } else { self.imap };
        let cert = self.cert_pem.clone();
        move |user, pass| Imap::login(addr, security, &cert, user, pass)
    }
}

#[derive(Clone, Copy)]
struct Ports {
    smtp: u16,
    smtps: u16,
    imap: u16,
    imaps: u16,
}

/// `$1` Postfix's master, `$2` Dovecot's master (each leading its own process group), `$3`
/// the folder: when stdin closes, kill both groups at once (their queue and mail are thrown away
/// anyway) and remove the folder.
const WATCHDOG: &str = r#"cat >/dev/null
kill -9 "-$1" "-$2" 2>/dev/null
rm -rf "$3"
"#;

/// Postfix's queue folders, with the owners and modes `postfix check` would give them (it
/// takes seconds to do so itself).
fn make_queue(queue: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let folders = [
        ("active", 0o700),
        ("bounce", 0o700),
        ("corrupt", 0o700),
        ("defer", 0o700),
        ("deferred", 0o700),
        ("flush", 0o700),
        ("hold", 0o700),
        ("incoming", 0o700),
        ("private", 0o700),
        ("saved", 0o700),
        ("trace", 0o700),
        ("maildrop", 0o730),
        ("public", 0o710),
        ("pid", 0o755),
    ];
    for (name, mode) in folders {
        std::fs::create_dir(queue.join(name)).unwrap();
        std::fs::set_permissions(queue.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let owned = folders.iter().filter(|(name, _)| !["maildrop", "public", "pid"].contains(name));
    run(Command::new("chown").arg("postfix").args(owned.map(|(name, _)| queue.join(name))));
    run(Command::new("chown").arg("postfix:postdrop").arg(queue.join("maildrop")).arg(queue.join("public")));
}

/// A CA and a certificate it signed for 127.0.0.1 and localhost: (CA, certificate, key).
fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca = make_ca(dir, "ca");
    make_server_cert(dir, "ca");
    // Postfix and Dovecot read the key as root; Postfix's checks want it not world-readable.
    run(Command::new("chmod").arg("600").arg(dir.join("server.key")));
    (ca, dir.join("server.pem"), dir.join("server.key"))
}

/// Replies Postfix is to give at `RCPT TO`, per recipient, each once: served to Postfix as a
/// `tcp:` lookup table (tcp_table(5)) on a port of 127.0.0.1, asked at every recipient.
#[derive(Clone, Default)]
struct Refusals(Arc<Mutex<HashMap<String, std::collections::VecDeque<String>>>>);

impl Refusals {
    /// Starts the table's server; returns the table and its address for `main.cf`.
    fn serve() -> (Refusals, SocketAddr) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let table = Refusals::default();
        let shared = table.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let table = shared.clone();
                std::thread::spawn(move || table.answer(conn));
            }
        });
        (table, addr)
    }

    fn push(&self, address: &str, reply: &str) {
        self.0.lock().unwrap().entry(address.to_lowercase()).or_default().push_back(reply.to_string());
    }

    /// One Postfix connection: `get <key>` lines, each answered `200 <value>` or `500`.
    fn answer(&self, conn: TcpStream) {
        let mut out = conn.try_clone().unwrap();
        for line in BufReader::new(conn).lines() {
            let Ok(line) = line else { return };
            let key = line.strip_prefix("get ").map(|k| decode_tcp_table(k).to_lowercase()).unwrap_or_default();
            let reply = self.0.lock().unwrap().get_mut(&key).and_then(|q| q.pop_front());
            let answer = match reply {
                Some(value) => format!("200 {}\n", encode_tcp_table(&value)),
                None => "500 not found\n".to_string(),
            };
            if out.write_all(answer.as_bytes()).is_err() {
                return;
            }
        }
    }
}

/// tcp_table(5) writes a space, `%` and anything outside printable ASCII as `%XX`.
fn encode_tcp_table(s: &str) -> String {
    s.bytes()
        .map(|b| if b <= b' ' || b == b'%' || b > b'~' { format!("%{b:02X}") } else { (b as char).to_string() })
        .collect()
}

fn decode_tcp_table(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn postfix_main_cf(dir: &Path, cert: &Path, key: &Path, refusals: SocketAddr) -> String {
    let d = dir.display();
    let lmtp = format!("lmtp:unix:{d}/lmtp");
    let transports: Vec<String> = DOMAINS.iter().map(|domain| format!("{domain}={lmtp}")).collect();
    format!(
        "compatibility_level = 3.6\n\
         queue_directory = {d}/queue\n\
         data_directory = {d}/data\n\
         meta_directory = /etc/postfix\n\
         mail_owner = postfix\n\
         setgid_group = postdrop\n\
         maillog_file = {d}/postfix.log\n\
         maillog_file_prefixes = {d}\n\
         myhostname = mail.okno.test\n\
         mydomain = okno.test\n\
         myorigin = okno.test\n\
         mydestination =\n\
         inet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\n\
         relay_domains = {domains}\n\
         relay_recipient_maps =\n\
         transport_maps = inline:{{ {transports} }}\n\
         # Nothing leaves 127.0.0.1: no relay host, no DNS, and every other way out is an error.\n\
         relayhost =\n\
         disable_dns_lookups = yes\n\
         smtp_dns_support_level = disabled\n\
         lmtp_dns_support_level = disabled\n\
         default_transport = error:5.7.1 outside the test domains\n\
         relay_transport = error:5.7.1 outside the test domains\n\
         local_transport = error:5.7.1 outside the test domains\n\
         smtpd_relay_restrictions = reject_unauth_destination\n\
         smtpd_recipient_restrictions = check_recipient_access tcp:{refusals}\n\
         alias_maps =\n\
         alias_database =\n\
         local_recipient_maps =\n\
         biff = no\n\
         message_size_limit = 52428800\n\
         smtputf8_enable = yes\n\
         smtpd_tls_cert_file = {cert}\n\
         smtpd_tls_key_file = {key}\n\
         smtpd_tls_security_level = may\n\
         smtpd_tls_auth_only = no\n\
         smtpd_sasl_auth_enable = yes\n\
         smtpd_sasl_type = dovecot\n\
         smtpd_sasl_path = {d}/auth\n",
        domains = DOMAINS.join(" "),
        transports = transports.join(", "),
        refusals = refusals,
        cert = cert.display(),
        key = key.display(),
    )
}

fn postfix_master_cf(ports: &Ports) -> String {
    // No chroot: the folder lives in /tmp. `smtp` and `relay` are the error daemon, so a
    // message can never be sent on to another server.
    format!(
        "127.0.0.1:{smtp} inet n - n - - smtpd\n\
         127.0.0.1:{smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n\
         postlog   unix-dgram n - n - 1 postlogd\n\
         pickup    unix n - n 60 1 pickup\n\
         cleanup   unix n - n - 0 cleanup\n\
         qmgr      unix n - n 300 1 qmgr\n\
         tlsmgr    unix - - n 1000? 1 tlsmgr\n\
         rewrite   unix - - n - - trivial-rewrite\n\
         bounce    unix - - n - 0 bounce\n\
         defer     unix - - n - 0 bounce\n\
         trace     unix - - n - 0 bounce\n\
         verify    unix - - n - 1 verify\n\
         flush     unix n - n 1000? 0 flush\n\
         proxymap  unix - - n - - proxymap\n\
         showq     unix n - n - - showq\n\
         error     unix - - n - - error\n\
         retry     unix - - n - - error\n\
         discard   unix - - n - - discard\n\
         lmtp      unix - - n - - lmtp\n\
         anvil     unix - - n - 1 anvil\n\
         scache    unix - - n - 1 scache\n\
         smtp      unix - - n - - error\n\
         relay     unix - - n - - error\n",
        smtp = ports.smtp,
        smtps = ports.smtps,
    )
}

fn dovecot_conf(dir: &Path, cert: &Path, key: &Path, ports: &Ports) -> String {
    let d = dir.display();
    let name = dir.file_name().unwrap().to_string_lossy();
    format!(
        "base_dir = {d}/dovecot\n\
         state_dir = {d}/dovecot-state\n\
         instance_name = {name}\n\
         log_path = {d}/dovecot.log\n\
         hostname = mail.okno.test\n\
         protocols = imap lmtp\n\
         # `support+tag@…` is support's mail: okno's reply addresses carry a tag.\n\
         recipient_delimiter = +\n\
         listen = 127.0.0.1\n\
         ssl = yes\n\
         ssl_cert = <{cert}\n\
         ssl_key = <{key}\n\
         disable_plaintext_auth = no\n\
         auth_mechanisms = plain login\n\
         auth_failure_delay = 0\n\
         first_valid_uid = 1\n\
         mail_location = maildir:~/Maildir\n\
         mail_max_userip_connections = 100\n\
         passdb {{\n\
           driver = passwd-file\n\
           args = scheme=PLAIN username_format=%Lu {d}/users/%Lu\n\
         }}\n\
         userdb {{\n\
           driver = static\n\
           args = uid=dovecot gid=dovecot home={d}/mail/%Ld/%Ln\n\
         }}\n\
         service imap-login {{\n\
           inet_listener imap {{\n\
             address = 127.0.0.1\n\
             port = {imap}\n\
           }}\n\
           inet_listener imaps {{\n\
             address = 127.0.0.1\n\
             port = {imaps}\n\
             ssl = yes\n\
           }}\n\
         }}\n\
         service lmtp {{\n\
           unix_listener {d}/lmtp {{\n\
             mode = 0666\n\
           }}\n\
         }}\n\
         service auth {{\n\
           unix_listener {d}/auth {{\n\
             mode = 0666\n\
           }}\n\
         }}\n\
         protocol lmtp {{\n\
           postmaster_address = postmaster@okno.test\n\
         }}\n",
        cert = cert.display(),
        key = key.display(),
        imap = ports.imap,
        imaps = ports.imaps,
    )
}

/// One SMTP transaction: the message to every recipient, or the reply that refused it.
fn smtp_send(addr: SocketAddr, message: &[u8], from: &str, to: &[String]) -> Result<(), String> {
    let stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut smtp = BufReader::new(stream);
    let expect = |smtp: &mut BufReader<TcpStream>, line: Option<&str>, code: u16| -> Result<(), String> {
        if let Some(line) = line {
            smtp.get_mut().write_all(format!("{line}\r\n").as_bytes()).map_err(|e| e.to_string())?;
        }
        let reply = smtp_reply(smtp)?;
        if reply.starts_with(&code.to_string()) {
            Ok(())
        } else {
            Err(reply)
        }
    };
    expect(&mut smtp, None, 220)?;
    expect(&mut smtp, Some("EHLO client.test"), 250)?;
    let utf8 = if from.is_ascii() && to.iter().all(|t| t.is_ascii()) { "" } else { " SMTPUTF8" };
    expect(&mut smtp, Some(&format!("MAIL FROM:<{from}> BODY=8BITMIME{utf8}")), 250)?;
    for rcpt in to {
        expect(&mut smtp, Some(&format!("RCPT TO:<{rcpt}>")), 250)?;
    }
    expect(&mut smtp, Some("DATA"), 354)?;
    let mut data = Vec::with_capacity(message.len() + 1024);
    for line in message.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    smtp.get_mut().write_all(&data).map_err(|e| e.to_string())?;
    expect(&mut smtp, None, 250)?;
    let _ = expect(&mut smtp, Some("QUIT"), 221);
    Ok(())
}

/// A whole SMTP reply, its lines joined.
fn smtp_reply(smtp: &mut impl BufRead) -> Result<String, String> {
    let mut reply = String::new();
    loop {
        let mut line = String::new();
        if smtp.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
            return Err(format!("the connection closed after {reply:?}"));
        }
        let last = line.as_bytes().get(3) != Some(&b'-');
        reply.push_str(&line);
        if last {
            return Ok(reply.trim_end().to_string());
        }
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A logged-in IMAP connection, blocking; enough of IMAP for the helpers.
struct Imap {
    io: BufReader<Box<dyn Stream>>,
    tag: u32,
}

/// An untagged response: its text with literals cut out, and the literals.
struct Untagged {
    text: Vec<u8>,
    literals: Vec<Vec<u8>>,
}

fn tls(stream: TcpStream, cert_pem: &str) -> Box<dyn Stream> {
    use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    Box::new(rustls::StreamOwned::new(conn, stream))
}

impl Imap {
    fn login(addr: SocketAddr, security: ImapSecurity, cert_pem: &str, user: &str, pass: &str) -> Result<Imap, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        let mut imap = if security == ImapSecurity::Tls {
            let mut imap = Imap { io: BufReader::new(tls(stream, cert_pem)), tag: 0 };
            imap.untagged()?; // the greeting
            imap
        } else {
            let plain = stream.try_clone().map_err(|e| e.to_string())?;
            let mut imap = Imap { io: BufReader::new(Box::new(plain)), tag: 0 };
            imap.untagged()?; // the greeting
            if security == ImapSecurity::StartTls {
                imap.command("STARTTLS")?;
                // Nothing follows the tagged OK, so the plain side's buffer is empty and may go.
                Imap { io: BufReader::new(tls(stream, cert_pem)), tag: imap.tag }
            } else {
                imap
            }
        };
        imap.command(&format!("LOGIN {} {}", quoted(user), quoted(pass)))?;
        Ok(imap)
    }

    /// Sends a command; its untagged responses, or the tagged reply when it is not OK.
    fn command(&mut self, command: &str) -> Result<Vec<Untagged>, String> {
        self.tag += 1;
        let tag = format!("a{}", self.tag);
        let inner = self.io.get_mut();
        inner
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .and_then(|()| inner.flush())
            .map_err(|e| e.to_string())?;
        let mut responses = Vec::new();
        loop {
            let response = self.untagged()?;
            if response.text.starts_with(format!("{tag} ").as_bytes()) {
                let text = String::from_utf8_lossy(&response.text).into_owned();
                return if text[tag.len() + 1..].starts_with("OK") { Ok(responses) } else { Err(text) };
            }
            responses.push(response);
        }
    }

    /// Reads one response line, with the literals it carries.
    fn untagged(&mut self) -> Result<Untagged, String> {
        let mut response = Untagged { text: Vec::new(), literals: Vec::new() };
        loop {
            let mut line = Vec::new();
            if self.io.read_until(b'\n', &mut line).map_err(|e| e.to_string())? == 0 {
                return Err("the IMAP connection closed".into());
            }
            let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
            response.text.extend_from_slice(trimmed);
            // A line ending in {N} announces N raw bytes, after which the line goes on.
            let literal = trimmed
                .strip_suffix(b"}")
                .and_then(|t| t.iter().rposition(|b| *b == b'{').map(|at| &t[at + 1..]))
                .and_then(|n| std::str::from_utf8(n).ok()?.parse::<usize>().ok());
            match literal {
                Some(n) => {
                    let mut bytes = vec![0; n];
                    self.io.read_exact(&mut bytes).map_err(|e| e.to_string())?;
                    response.literals.push(bytes);
                }
                None => return Ok(response),
            }
        }
    }

    fn fetch_all(mut self) -> Result<Vec<Vec<u8>>, String> {
        self.command("EXAMINE INBOX")?;
        let fetched = self.command("UID FETCH 1:* (UID BODY.PEEK[])")?;
        let _ = self.command("LOGOUT");
        Ok(fetched
            .into_iter()
            .filter(|r| r.text.windows(7).any(|w| w == b" FETCH "))
            .filter_map(|mut r| r.literals.pop())
            .collect())
    }

    fn uidvalidity(self) -> Result<u32, String> {
        self.status("UIDVALIDITY")
    }

    fn messages(self) -> Result<u32, String> {
        self.status("MESSAGES")
    }

    /// One number of `STATUS INBOX`.
    fn status(mut self, item: &str) -> Result<u32, String> {
        let status = self.command(&format!("STATUS INBOX ({item})"))?;
        let _ = self.command("LOGOUT");
        let text = status.iter().map(|r| String::from_utf8_lossy(&r.text).into_owned()).collect::<String>();
        let value = text
            .split(&format!("{item} "))
            .nth(1)
            .and_then(|v| v.split([')', ' ']).next())
            .and_then(|v| v.trim().parse().ok());
        value.ok_or_else(|| format!("no {item} in {text:?}"))
    }
}

/// An IMAP quoted string.
fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}
