//! A throwaway OpenLDAP directory for the directory sign-in tests: Debian's `slapd` (package
//! `slapd`; `SLAPD` and `SLAPADD` override the paths) in a temporary folder with an mdb
//! database, a CA and a server certificate made with `openssl`, listening on 127.0.0.1 on free
//! ports for `ldap://` (with StartTLS) and `ldaps://`, loaded with [`LDIF`]: people, a service
//! account and nested groups. Killed and removed on drop.
//!
//! Without `slapd` a test is skipped with a note, unless `LDAP_TEST_REQUIRED=1` (set by
//! `.ci/run`), which makes it a failure.
//!
//! The people, all with the password `<login>-pass`:
//!
//! ```text
//! ivan   ∈ support-night ∈ support-team ∈ okno-operators  → operator (three levels down)
//!        ∈ loop-a ∈ loop-b ∈ loop-a                       (a loop the walk must survive)
//! anna   ∈ okno-admins, support-team                      → admin (the highest role wins)
//! olga   ∈ okno-viewers (groupOfUniqueNames)              → restricted
//! petr   ∈ sales                                          → no mapped group: refused
//! twin   two entries with uid=twin                        → refused (exactly one entry)
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use okno_server::directory::{LdapSettings, NestedGroups};

pub const BASE_DN: &str = "dc=example,dc=org";
pub const ADMIN_DN: &str = "cn=admin,dc=example,dc=org";
pub const ADMIN_PASSWORD: &str = "admin-secret";
pub const SERVICE_DN: &str = "cn=okno,ou=services,dc=example,dc=org";
pub const SERVICE_PASSWORD: &str = "service-secret";
pub const OPERATORS_GROUP: &str = "cn=okno-operators,ou=groups,dc=example,dc=org";
pub const ADMINS_GROUP: &str = "cn=okno-admins,ou=groups,dc=example,dc=org";
pub const VIEWERS_GROUP: &str = "cn=okno-viewers,ou=groups,dc=example,dc=org";

/// The DN of a person of [`LDIF`].
pub fn person(login: &str) -> String {
    format!("uid={login},ou=people,{BASE_DN}")
}

/// A person's password in [`LDIF`].
pub fn password(login: &str) -> String {
    format!("{login}-pass")
}

/// The directory's contents.
pub const LDIF: &str = "\
dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=contractors,dc=example,dc=org
objectClass: organizationalUnit
ou: contractors

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: ou=services,dc=example,dc=org
objectClass: organizationalUnit
ou: services

dn: cn=okno,ou=services,dc=example,dc=org
objectClass: organizationalRole
objectClass: simpleSecurityObject
cn: okno
userPassword: service-secret

dn: uid=ivan,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: ivan
cn: Ivan Petrov
sn: Petrov
userPassword: ivan-pass

dn: uid=anna,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: anna
cn: Anna Smirnova
sn: Smirnova
userPassword: anna-pass

dn: uid=olga,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: olga
cn: Olga Ivanova
sn: Ivanova
userPassword: olga-pass

dn: uid=petr,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: petr
cn: Petr Sidorov
sn: Sidorov
userPassword: petr-pass

dn: uid=twin,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin One
sn: One
userPassword: twin-pass

dn: uid=twin,ou=contractors,dc=example,dc=org
objectClass: inetOrgPerson
uid: twin
cn: Twin Two
sn: Two
userPassword: twin-pass

dn: cn=support-night,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: support-night
member: uid=ivan,ou=people,dc=example,dc=org

dn: cn=support-team,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: support-team
member: cn=support-night,ou=groups,dc=example,dc=org
member: uid=anna,ou=people,dc=example,dc=org

dn: cn=okno-operators,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: okno-operators
member: cn=support-team,ou=groups,dc=example,dc=org

dn: cn=okno-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: okno-admins
member: uid=anna,ou=people,dc=example,dc=org
member: cn=okno,ou=services,dc=example,dc=org

dn: cn=okno-viewers,ou=groups,dc=example,dc=org
objectClass: groupOfUniqueNames
cn: okno-viewers
uniqueMember: uid=olga,ou=people,dc=example,dc=org

dn: cn=sales,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: sales
member: uid=petr,ou=people,dc=example,dc=org

dn: cn=loop-a,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: loop-a
member: uid=ivan,ou=people,dc=example,dc=org
member: cn=loop-b,ou=groups,dc=example,dc=org

dn: cn=loop-b,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: loop-b
member: cn=loop-a,ou=groups,dc=example,dc=org
";

/// A running `slapd`.
pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (StartTLS offered).
    pub ldap_url: String,
    /// `ldaps://127.0.0.1:PORT`
    pub ldaps_url: String,
    /// The CA that signed the server's certificate.
    pub ca_file: PathBuf,
    /// A CA that signed nothing the server has.
    pub other_ca_file: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn program(var: &str, default: &str) -> PathBuf {
    PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()))
}

pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A certificate for 127.0.0.1 and localhost (`server.pem`, `server.key`) in `dir`, signed by
/// the CA `ca` made there with [`make_ca`].
pub(crate) fn make_server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]));
    run(Command::new("openssl").current_dir(dir).args([
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        &format!("{ca}.pem"),
        "-CAkey",
        &format!("{ca}.key"),
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ]));
}

/// A CA (`<name>.pem`, `<name>.key`) in `dir`.
pub(crate) fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let pem = dir.join(format!("{name}.pem"));
    run(Command::new("openssl").current_dir(dir).args([
        "req",
        "-x509",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        &format!("{name}.key"),
        "-out",
        &format!("{name}.pem"),
        "-days",
        "2",
        "-subj",
        &format!("/CN=okno test {name}"),
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]));
    pem
}

impl Slapd {
    /// Starts a directory loaded with [`LDIF`]; `None` (with a note) when `slapd` is not
    /// installed and `LDAP_TEST_REQUIRED` is not `1`.
    pub fn start() -> Option<Slapd> {
        let slapd = program("SLAPD", "/usr/sbin/slapd");
        let slapadd = program("SLAPADD", "/usr/sbin/slapadd");
        if !slapd.exists() || !slapadd.exists() {
            if std::env::var("LDAP_TEST_REQUIRED").is_ok_and(|v| v == "1") {
                panic!("LDAP_TEST_REQUIRED=1 but {} is missing (apt-get install -y slapd ldap-utils)", slapd.display());
            }
            eprintln!("skipped: no slapd ({}); set LDAP_TEST_REQUIRED=1 to fail instead", slapd.display());
            return None;
        }
        let dir = std::env::temp_dir().join(format!("okno-slapd-{}", okno_domain::ids::new_id()));
        std::fs::create_dir_all(dir.join("db")).unwrap();
        let ca_file = make_ca(&dir, "ca");
        let other_ca_file = make_ca(&dir, "other-ca");
        make_server_cert(&dir, "ca");
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             moduleload ppolicy\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             TLSCACertificateFile {d}/ca.pem\n\
             TLSCertificateFile {d}/server.pem\n\
             TLSCertificateKeyFile {d}/server.key\n\
             database mdb\n\
             maxsize 16777216\n\
             suffix \"{BASE_DN}\"\n\
             rootdn \"{ADMIN_DN}\"\n\
             rootpw {ADMIN_PASSWORD}\n\
             directory {d}/db\n\
             overlay ppolicy\n\
             access to attrs=userPassword by self read by anonymous auth by * none\n\
             access to * by users read by * none\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf).unwrap();
        std::fs::write(dir.join("data.ldif"), LDIF).unwrap();
        run(Command::new(&slapadd).args(["-q", "-f"]).arg(dir.join("slapd.conf")).arg("-l").arg(dir.join("data.ldif")));
        let (plain, tls) = (free_port(), free_port());
        let ldap_url = format!("ldap://127.0.0.1:{plain}");
        let ldaps_url = format!("ldaps://127.0.0.1:{tls}");
        let log = dir.join("slapd.log");
        let child = Command::new(&slapd)
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("{ldap_url}/ {ldaps_url}/"))
            // Stats (256): one line per connection and operation, which tests count.
            .args(["-d", "256"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", slapd.display()));
        let me = Slapd { ldap_url, ldaps_url, ca_file, other_ca_file, dir, log, child };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        for port in [plain, tls] {
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(std::time::Instant::now() < deadline, "slapd did not listen: {}", me.log_text());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(me)
    }

    /// An `[ldap]` section for this directory: plain `ldap://`, okno's service account, the
    /// walk of nested groups, and okno-admins → admin, okno-operators → operator,
    /// okno-viewers → restricted; re-checked every second.
    pub fn settings(&self) -> LdapSettings {
        LdapSettings {
            url: Some(self.ldap_url.clone()),
            bind_dn: Some(SERVICE_DN.into()),
            bind_password: Some(SERVICE_PASSWORD.into()),
            base_dn: BASE_DN.into(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={login}))".into(),
            group_base_dn: Some(format!("ou=groups,{BASE_DN}")),
            nested_groups: NestedGroups::Walk,
            roles: [
                (ADMINS_GROUP.to_string(), "admin".to_string()),
                (OPERATORS_GROUP.to_string(), "operator".to_string()),
                (VIEWERS_GROUP.to_string(), "restricted".to_string()),
            ]
            .into(),
            timeout_secs: 5,
            recheck_secs: 1,
            ..Default::default()
        }
    }

    /// What slapd logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Bind operations the directory received so far (every one, whoever binds).
    pub fn binds(&self) -> usize {
        self.log_text().lines().filter(|l| l.contains(" BIND dn=") && l.contains("method=")).count()
    }

    /// Bind operations as `dn` so far.
    pub fn binds_as(&self, dn: &str) -> usize {
        let needle = format!(" BIND dn=\"{dn}\" method=");
        self.log_text().lines().filter(|l| l.contains(&needle)).count()
    }

    async fn admin(&self) -> ldap3::Ldap {
        let (conn, mut ldap) = ldap3::LdapConnAsync::new(&self.ldap_url).await.unwrap();
        ldap3::drive!(conn);
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD).await.unwrap().success().unwrap();
        ldap
    }

    /// Removes `member` from `group` (a `member` value), as the directory's administrator.
    pub async fn remove_member(&self, group: &str, member: &str) {
        let mut ldap = self.admin().await;
        let mods = vec![ldap3::Mod::Delete("member".to_string(), HashSet::from([member.to_string()]))];
        ldap.modify(group, mods).await.unwrap().success().unwrap();
        let _ = ldap.unbind().await;
    }

    /// Adds `member` to `group` (a `member` value), as the directory's administrator.
    pub async fn add_member(&self, group: &str, member: &str) {
        let mut ldap = self.admin().await;
        let mods = vec![ldap3::Mod::Add("member".to_string(), HashSet::from([member.to_string()]))];
        ldap.modify(group, mods).await.unwrap().success().unwrap();
        let _ = ldap.unbind().await;
    }

    /// Locks an account the OpenLDAP way (`pwdAccountLockedTime`, the password policy's lock).
    pub async fn lock(&self, dn: &str) {
        let mut ldap = self.admin().await;
        let mods =
            vec![ldap3::Mod::Replace("pwdAccountLockedTime".to_string(), HashSet::from(["000001010000Z".to_string()]))];
        ldap.modify(dn, mods).await.unwrap().success().unwrap();
        let _ = ldap.unbind().await;
    }

    /// Deletes an entry.
    pub async fn delete(&self, dn: &str) {
        let mut ldap = self.admin().await;
        ldap.delete(dn).await.unwrap().success().unwrap();
        let _ = ldap.unbind().await;
    }

    /// Stops the directory (an outage), keeping its folder.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
