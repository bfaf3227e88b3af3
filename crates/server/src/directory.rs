//! Operators from an LDAP directory or Active Directory (`[ldap]` in okno.toml).
//!
//! A sign-in is bind–search–bind: okno binds as its service account, finds the one entry the
//! user filter names for the login (escaped, so a login cannot change the filter), binds as
//! that entry with the password typed (on a connection of its own: the directory, not okno,
//! proves the password), then reads the entry's groups as the service account and maps them to
//! a role. An empty or blank password is refused before any bind: most directories answer a
//! bind with a DN and no password as an anonymous bind that *succeeds*.
//!
//! Local accounts keep priority: a login that is a local operator's is checked against their
//! password alone, and the directory is asked only about logins that are not local. The
//! directory never takes over a local account of the same login.
//!
//! The directory stays the authority while people are signed in:
//!
//! ```text
//! every recheck_secs:  directory operators with a session open
//!   └─ for each: search the login again as the service account
//!        ├─ no entry, another entry, disabled or locked, in no mapped group
//!        │     → sessions ended, account disabled (for the directory), audited
//!        ├─ another role → role changed, audited
//!        └─ directory unreachable → nothing changes, a warning (next round tries again)
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use okno_domain::model::Role;
use okno_domain::{Error, Result};
use okno_store::{DirectorySignIn, OperatorAccount, Store};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{AppState, Settings};

/// The OID of Active Directory's `LDAP_MATCHING_RULE_IN_CHAIN`: membership through any depth of
/// nested groups, resolved by the directory itself.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// Active Directory's `userAccountControl` bit for a disabled account.
const AD_ACCOUNT_DISABLED: u64 = 0x2;
/// Groups a recursive walk reads at most (a loop or a huge tree stops here).
const MAX_GROUPS: usize = 1_000;
/// Group DNs put in one search filter of the recursive walk.
const GROUPS_PER_SEARCH: usize = 50;

/// How nested groups count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NestedGroups {
    /// Direct membership only.
    None,
    /// okno walks up `member` / `uniqueMember` / `memberOf` itself, at most `max_group_depth`
    /// levels (OpenLDAP, 389-DS, any directory).
    #[default]
    Walk,
    /// The directory resolves nesting (Active Directory's matching rule `1.2.840.113556.1.4.1941`).
    InChain,
}

/// `[ldap]`: operators signing in through an LDAP directory or Active Directory. Off unless
/// `url` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LdapSettings {
    /// `ldap://host[:389]` or `ldaps://host[:636]`.
    pub url: Option<String>,
    /// Upgrade an `ldap://` connection with StartTLS before anything is sent.
    pub starttls: bool,
    /// A PEM file of the certificates to trust for `ldaps://` and StartTLS (the directory's CA);
    /// default: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The service account okno searches with; none: an anonymous search.
    pub bind_dn: Option<String>,
    /// Its password: plain, or sealed with `okno secrets seal` (`sealed:v1:…`).
    pub bind_password: Option<SecretString>,
    /// Where users are searched (the whole subtree).
    pub base_dn: String,
    /// The filter that finds a user; `{login}` is replaced by the login typed, escaped.
    pub user_filter: String,
    /// The attribute holding the login (okno's operator login is its value).
    pub login_attribute: String,
    /// Where groups are searched; default: `base_dn`.
    pub group_base_dn: Option<String>,
    /// What a group is.
    pub group_filter: String,
    /// `walk` (default), `in_chain` (Active Directory) or `none`.
    pub nested_groups: NestedGroups,
    /// Levels of nesting `walk` follows.
    pub max_group_depth: u32,
    /// Group DN → okno role (`admin`, `operator`, `restricted`). The highest role of the
    /// user's groups wins; a user in none of them cannot sign in.
    pub roles: BTreeMap<String, String>,
    /// Seconds a connection or one request to the directory may take.
    pub timeout_secs: u64,
    /// How often the sessions of directory operators are checked against the directory, in
    /// seconds.
    pub recheck_secs: u64,
}

impl Default for LdapSettings {
    fn default() -> Self {
        Self {
            url: None,
            starttls: false,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            base_dn: String::new(),
            user_filter: "(&(objectClass=inetOrgPerson)(uid={login}))".into(),
            login_attribute: "uid".into(),
            group_base_dn: None,
            group_filter: "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=group))".into(),
            nested_groups: NestedGroups::Walk,
            max_group_depth: 8,
            roles: BTreeMap::new(),
            timeout_secs: 10,
            recheck_secs: 60,
        }
    }
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::invalid("invalid_config", msg.into())
}

/// The roles a directory group may give, lowest first.
fn role_rank(role: Role) -> Option<u8> {
    match role {
        Role::Restricted => Some(1),
        Role::Operator => Some(2),
        Role::Admin => Some(3),
        Role::Integration => None,
    }
}

impl LdapSettings {
    /// Whether the directory is on.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Checks what types alone cannot (called by [`Settings::validate`]).
    pub fn validate(&self) -> Result<()> {
        let Some(url) = &self.url else { return Ok(()) };
        let parsed = url::Url::parse(url).map_err(|e| invalid(format!("ldap.url `{url}`: {e}")))?;
        match parsed.scheme() {
            "ldap" => {}
            "ldaps" if self.starttls => {
                return Err(invalid("ldap.starttls is for ldap:// URLs: ldaps:// is TLS from the start"))
            }
            "ldaps" => {}
            other => return Err(invalid(format!("ldap.url `{url}`: expected ldap:// or ldaps://, not {other}://"))),
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!("ldap.url `{url}` names no host")));
        }
        if self.base_dn.trim().is_empty() {
            return Err(invalid("ldap.base_dn is needed with ldap.url"));
        }
        let f = &self.user_filter;
        if !f.contains("{login}") || !f.starts_with('(') || !f.ends_with(')') {
            return Err(invalid(format!(
                "ldap.user_filter `{f}` must be a filter in parentheses containing {{login}}"
            )));
        }
        if !self.group_filter.starts_with('(') || !self.group_filter.ends_with(')') {
            return Err(invalid(format!("ldap.group_filter `{}` must be a filter in parentheses", self.group_filter)));
        }
        if self.login_attribute.trim().is_empty() {
            return Err(invalid("ldap.login_attribute must not be empty"));
        }
        if self.bind_dn.is_some() != self.bind_password.is_some() {
            return Err(invalid("ldap.bind_dn and ldap.bind_password go together"));
        }
        if self.roles.is_empty() {
            return Err(invalid("ldap.roles maps no group to a role: nobody could sign in"));
        }
        for (group, role) in &self.roles {
            let r = Role::parse(role).map_err(|_| invalid(format!("ldap.roles: `{role}` is not a role")))?;
            if role_rank(r).is_none() {
                return Err(invalid(format!(
                    "ldap.roles: `{group}` = `{role}`: an operator's role is admin, operator or restricted"
                )));
            }
        }
        if self.timeout_secs == 0 || self.recheck_secs == 0 || self.max_group_depth == 0 {
            return Err(invalid("ldap.timeout_secs, ldap.recheck_secs and ldap.max_group_depth must be at least 1"));
        }
        Ok(())
    }
}

/// A DN compared as directories do for the role mapping: attribute names and values without
/// case, no spaces around `,` and `=`.
pub fn normalize_dn(dn: &str) -> String {
    let mut rdns = Vec::new();
    let mut current = String::new();
    let mut escaped = false;
    for ch in dn.chars() {
        if escaped {
            current.push(ch);
            escaped = false;
        } else if ch == '\\' {
            current.push(ch);
            escaped = true;
        } else if ch == ',' {
            rdns.push(std::mem::take(&mut current));
        } else {
            current.push(ch);
        }
    }
    rdns.push(current);
    rdns.iter()
        .map(|rdn| match rdn.split_once('=') {
            Some((k, v)) => format!("{}={}", k.trim().to_lowercase(), v.trim().to_lowercase()),
            None => rdn.trim().to_lowercase(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Why the directory did not let someone in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No such user, more than one, or a wrong password (never said apart to the person).
    BadCredentials,
    /// Disabled or locked in the directory.
    Disabled(&'static str),
    /// In no group `ldap.roles` maps.
    NoRole,
}

/// What went wrong asking the directory.
#[derive(Debug)]
pub enum DirectoryError {
    Refused(Refusal),
    /// The directory could not be asked (down, TLS refused, the service account refused): the
    /// text is for the server log.
    Unavailable(String),
}

impl From<Refusal> for DirectoryError {
    fn from(r: Refusal) -> Self {
        DirectoryError::Refused(r)
    }
}

type DirResult<T> = std::result::Result<T, DirectoryError>;

/// A person the directory let in.
#[derive(Debug, Clone, PartialEq)]
pub struct DirectoryUser {
    /// The login as the directory spells it.
    pub login: String,
    pub dn: String,
    pub role: Role,
}

/// The configured directory.
pub struct Directory {
    cfg: LdapSettings,
    url: String,
    bind_password: Option<SecretString>,
    tls: Arc<rustls::ClientConfig>,
    /// Normalised group DN → role.
    roles: Vec<(String, Role)>,
    timeout: Duration,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Directory({})", self.url)
    }
}

/// The certificates okno trusts for the directory: `ca_file`'s, or the system's roots.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| invalid(format!("ldap.ca_file `{}`: {e}", path.display()));
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system certificate rustls cannot use is one fewer root, not a reason to stop.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::internal(format!("TLS for the directory: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError::Unavailable(format!("{what}: {e}"))
}

impl Directory {
    /// The directory the settings name, if `[ldap]` is on. A sealed bind password is opened
    /// with okno's secret key.
    pub fn from_settings(settings: &Settings) -> Result<Option<Arc<Directory>>> {
        let cfg = &settings.ldap;
        let Some(url) = cfg.url.clone() else { return Ok(None) };
        cfg.validate()?;
        let bind_password = match &cfg.bind_password {
            Some(p) => Some(SecretString::from(crate::secrets::open_setting(
                settings,
                p.expose_secret(),
                "ldap.bind_password",
            )?)),
            None => None,
        };
        let roles = cfg
            .roles
            .iter()
            .map(|(dn, role)| Ok((normalize_dn(dn), Role::parse(role)?)))
            .collect::<Result<Vec<_>>>()?;
        tracing::info!(url = %url, "operators who are not local sign in through the directory");
        Ok(Some(Arc::new(Directory {
            url,
            bind_password,
            tls: tls_config(cfg.ca_file.as_deref())?,
            roles,
            timeout: Duration::from_secs(cfg.timeout_secs),
            cfg: cfg.clone(),
        })))
    }

    /// How often sessions are checked against the directory.
    pub fn recheck_every(&self) -> Duration {
        Duration::from_secs(self.cfg.recheck_secs)
    }

    /// A new connection (TLS as configured), not yet bound.
    async fn connect(&self) -> DirResult<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout)
            .set_starttls(self.cfg.starttls)
            .set_config(self.tls.clone());
        let connecting = LdapConnAsync::with_settings(settings, &self.url);
        let (conn, ldap) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| unavailable(&format!("connecting to {}", self.url), "timed out"))?
            .map_err(|e| unavailable(&format!("connecting to {}", self.url), e))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A connection bound as the service account (or anonymous without one).
    async fn service(&self) -> DirResult<Ldap> {
        let mut ldap = self.connect().await?;
        if let (Some(dn), Some(pw)) = (&self.cfg.bind_dn, &self.bind_password) {
            let res = self.timed("the service account's bind", ldap.simple_bind(dn, pw.expose_secret())).await?;
            if res.rc != 0 {
                return Err(DirectoryError::Unavailable(format!(
                    "the directory refused okno's service account `{dn}` (code {}{}): check ldap.bind_dn and \
                     ldap.bind_password",
                    res.rc,
                    diagnostic(&res.text)
                )));
            }
        }
        Ok(ldap)
    }

    async fn timed<T>(
        &self,
        what: &str,
        op: impl std::future::Future<Output = ldap3::result::Result<T>>,
    ) -> DirResult<T> {
        tokio::time::timeout(self.timeout, op)
            .await
            .map_err(|_| unavailable(what, "timed out"))?
            .map_err(|e| unavailable(what, e))
    }

    /// The one entry the user filter finds for `login`; none, or more than one, is a refusal.
    async fn find_user(&self, ldap: &mut Ldap, login: &str) -> DirResult<SearchEntry> {
        let filter = self.cfg.user_filter.replace("{login}", &ldap_escape(login));
        let attrs = vec![
            self.cfg.login_attribute.as_str(),
            "memberOf",
            "userAccountControl",
            "pwdAccountLockedTime",
            "nsAccountLock",
        ];
        let res = self
            .timed("searching for the user", ldap.search(&self.cfg.base_dn, Scope::Subtree, &filter, attrs))
            .await?;
        match res.1.rc {
            0 => {}
            // More than one entry: never pick one.
            4 => return Err(Refusal::BadCredentials.into()),
            rc => {
                return Err(DirectoryError::Unavailable(format!(
                    "searching for users under `{}` failed (code {rc}{}): check ldap.base_dn and ldap.user_filter",
                    self.cfg.base_dn,
                    diagnostic(&res.1.text)
                )))
            }
        }
        let mut entries = res.0.into_iter().map(SearchEntry::construct);
        match (entries.next(), entries.next()) {
            (Some(entry), None) => Ok(entry),
            (Some(_), Some(_)) => {
                tracing::warn!(login = %login, "the directory has more than one entry for a login: nobody signs in with it");
                Err(Refusal::BadCredentials.into())
            }
            _ => Err(Refusal::BadCredentials.into()),
        }
    }

    /// Proves `password` by binding as `dn` on a connection of its own.
    async fn bind_as(&self, dn: &str, password: &str) -> DirResult<()> {
        let mut ldap = self.connect().await?;
        let res = self.timed("binding as the user", ldap.simple_bind(dn, password)).await;
        let _ = tokio::time::timeout(self.timeout, ldap.unbind()).await;
        let res = res?;
        match res.rc {
            0 => Ok(()),
            // invalidCredentials (Active Directory says why in the text: 52e wrong password,
            // 533 disabled, 775 locked out…), unwillingToPerform, a password policy's refusal.
            49 | 53 | 19 | 50 => {
                tracing::info!(dn = %dn, code = res.rc, text = %res.text, "the directory refused a user's bind");
                Err(Refusal::BadCredentials.into())
            }
            rc => Err(DirectoryError::Unavailable(format!(
                "binding as a user failed (code {rc}{})",
                diagnostic(&res.text)
            ))),
        }
    }

    /// Why the directory holds the entry disabled, if it does.
    fn disabled(entry: &SearchEntry) -> Option<&'static str> {
        let first =
            |name: &str| entry.attrs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.first());
        if first("userAccountControl")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|u| u & AD_ACCOUNT_DISABLED != 0)
        {
            return Some("disabled in the directory");
        }
        if first("pwdAccountLockedTime").is_some() {
            return Some("locked in the directory");
        }
        if first("nsAccountLock").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Some("locked in the directory");
        }
        None
    }

    /// The DNs (normalised) of the groups `entry` is in, nested as `ldap.nested_groups` says.
    async fn groups(&self, ldap: &mut Ldap, entry: &SearchEntry) -> DirResult<HashSet<String>> {
        let base = self.cfg.group_base_dn.as_deref().unwrap_or(&self.cfg.base_dn);
        let mut found: HashSet<String> = HashSet::new();
        let member_of: Vec<String> = entry
            .attrs
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("memberOf"))
            .flat_map(|(_, v)| v.iter().cloned())
            .collect();
        match self.cfg.nested_groups {
            NestedGroups::InChain => {
                found.extend(self.search_dns(ldap, base, &self.in_chain_filter(&entry.dn)).await?);
                found.extend(member_of.iter().map(|g| normalize_dn(g)));
            }
            NestedGroups::None => {
                let filter = self.member_filter(std::slice::from_ref(&entry.dn));
                found.extend(self.search_dns(ldap, base, &filter).await?);
                found.extend(member_of.iter().map(|g| normalize_dn(g)));
            }
            NestedGroups::Walk => {
                // Breadth first from the user: each level is the groups whose members include
                // one of the level below; a group seen before is not followed again.
                let mut frontier: Vec<String> = vec![entry.dn.clone()];
                frontier.extend(member_of.iter().cloned());
                found.extend(member_of.iter().map(|g| normalize_dn(g)));
                for _ in 0..self.cfg.max_group_depth {
                    let mut next = Vec::new();
                    for chunk in frontier.chunks(GROUPS_PER_SEARCH) {
                        for (raw, norm) in self.search_dns_raw(ldap, base, &self.member_filter(chunk)).await? {
                            if found.insert(norm) {
                                next.push(raw);
                            }
                        }
                    }
                    if next.is_empty() || found.len() >= MAX_GROUPS {
                        break;
                    }
                    frontier = next;
                }
            }
        }
        Ok(found)
    }

    /// Groups with any of `members` as a direct `member` or `uniqueMember` (DNs escaped).
    fn member_filter(&self, members: &[String]) -> String {
        let any: String = members
            .iter()
            .map(|m| {
                let m = ldap_escape(m.as_str());
                format!("(member={m})(uniqueMember={m})")
            })
            .collect();
        format!("(&{}(|{any}))", self.cfg.group_filter)
    }

    /// Groups `dn` is in at any depth, resolved by Active Directory.
    fn in_chain_filter(&self, dn: &str) -> String {
        format!("(&{}(member:{IN_CHAIN}:={}))", self.cfg.group_filter, ldap_escape(dn))
    }

    async fn search_dns(&self, ldap: &mut Ldap, base: &str, filter: &str) -> DirResult<Vec<String>> {
        Ok(self.search_dns_raw(ldap, base, filter).await?.into_iter().map(|(_, n)| n).collect())
    }

    /// The DNs a search finds, as given and normalised.
    async fn search_dns_raw(&self, ldap: &mut Ldap, base: &str, filter: &str) -> DirResult<Vec<(String, String)>> {
        let res = self.timed("searching for groups", ldap.search(base, Scope::Subtree, filter, vec!["1.1"])).await?;
        if res.1.rc != 0 && res.1.rc != 4 {
            return Err(DirectoryError::Unavailable(format!(
                "searching for groups under `{base}` failed (code {}{}): check ldap.group_base_dn",
                res.1.rc,
                diagnostic(&res.1.text)
            )));
        }
        Ok(res
            .0
            .into_iter()
            .map(SearchEntry::construct)
            .map(|e| {
                let normalized = normalize_dn(&e.dn);
                (e.dn, normalized)
            })
            .collect())
    }

    /// The highest role the groups give.
    fn role_of(&self, groups: &HashSet<String>) -> Option<Role> {
        self.roles.iter().filter(|(dn, _)| groups.contains(dn)).map(|(_, r)| *r).max_by_key(|r| role_rank(*r))
    }

    /// The login the directory spells for `entry`, else the one typed.
    fn login_of(&self, entry: &SearchEntry, typed: &str) -> String {
        entry
            .attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(&self.cfg.login_attribute))
            .and_then(|(_, v)| v.first())
            .filter(|v| !v.trim().is_empty())
            .cloned()
            .unwrap_or_else(|| typed.to_string())
    }

    /// Who `entry` is to okno now: their login, DN and role, or why they are refused.
    async fn standing(&self, ldap: &mut Ldap, entry: &SearchEntry, typed: &str) -> DirResult<DirectoryUser> {
        if let Some(why) = Self::disabled(entry) {
            return Err(Refusal::Disabled(why).into());
        }
        let groups = self.groups(ldap, entry).await?;
        let role = self.role_of(&groups).ok_or(Refusal::NoRole)?;
        Ok(DirectoryUser { login: self.login_of(entry, typed), dn: entry.dn.clone(), role })
    }

    /// Signs `login` in with `password`: bind–search–bind, then the groups. A blank password
    /// is refused before anything is sent to the directory.
    pub async fn sign_in(&self, login: &str, password: &str) -> DirResult<DirectoryUser> {
        if password.trim().is_empty() || login.trim().is_empty() {
            return Err(Refusal::BadCredentials.into());
        }
        let mut ldap = self.service().await?;
        let outcome = async {
            let entry = self.find_user(&mut ldap, login).await?;
            self.bind_as(&entry.dn, password).await?;
            self.standing(&mut ldap, &entry, login).await
        }
        .await;
        let _ = tokio::time::timeout(self.timeout, ldap.unbind()).await;
        outcome
    }

    /// Who the operator `login` (entry `dn`) is to the directory now, without their password.
    /// Their login naming another entry now is a refusal.
    pub async fn check(&self, ldap: &mut Ldap, login: &str, dn: &str) -> DirResult<DirectoryUser> {
        let entry = self.find_user(ldap, login).await?;
        if normalize_dn(&entry.dn) != normalize_dn(dn) {
            return Err(Refusal::BadCredentials.into());
        }
        self.standing(ldap, &entry, login).await
    }
}

fn diagnostic(text: &str) -> String {
    if text.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", text.trim())
    }
}

/// What the login form does with an attempt.
#[derive(Debug)]
pub enum Verdict {
    /// The password is proven: sign this account in (a disabled one is refused by the caller).
    SignIn(OperatorAccount),
    /// Refused: counted as a failed login against `target` (an operator id, or the login),
    /// the person told `reason` (a message key).
    Refused { target: String, reason: &'static str },
    /// The directory could not be asked: nothing is counted, the person is told to try later.
    Unavailable,
}

/// Checks a login and password: a local operator's against their password, any other login
/// against the directory (when `[ldap]` is on), whose user is then created or updated in okno.
pub async fn authenticate(state: &AppState, login: &str, password: String) -> Result<Verdict> {
    let store = &state.engine.store;
    let account = store.operator_account(login).await?;
    let directory_dn = match &account {
        Some(_) => store.operator_directory_dn(login).await?,
        None => None,
    };
    let target = account.as_ref().map_or_else(|| login.chars().take(200).collect(), |a| a.operator.id.clone());
    let refused = |reason| Ok(Verdict::Refused { target: target.clone(), reason });
    // An enabled directory operator the directory now refuses (with the right password) loses
    // the sessions they have at once, without waiting for the re-check.
    let enabled_directory_operator =
        account.as_ref().filter(|a| directory_dn.is_some() && !a.disabled).map(|a| a.operator.id.clone());
    let directory = match (account, directory_dn, state.directory.as_ref()) {
        (Some(local), None, _) => {
            let hash = Some(local.operator.password_hash.clone());
            return if crate::ui::session::check_password(hash, password).await {
                Ok(Verdict::SignIn(local))
            } else {
                refused("bad_login")
            };
        }
        (_, _, None) => {
            // As long as a wrong password takes.
            crate::ui::session::check_password(None, password).await;
            return refused("bad_login");
        }
        (_, _, Some(d)) => d.clone(),
    };
    let outcome = directory.sign_in(login, &password).await;
    if let (Err(DirectoryError::Refused(r @ (Refusal::NoRole | Refusal::Disabled(_)))), Some(id)) =
        (&outcome, &enabled_directory_operator)
    {
        let reason = refusal_reason(r);
        store.directory_refused(id, reason).await?;
        tracing::warn!(login = %login, reason, "a directory operator's sessions ended: the directory no longer lets them in");
    }
    match outcome {
        Ok(user) => sign_in_user(store.as_ref(), user, login, refused).await,
        Err(DirectoryError::Refused(Refusal::NoRole)) => refused("directory_no_role"),
        Err(DirectoryError::Refused(Refusal::Disabled(why))) => {
            tracing::info!(login = %login, why, "a directory sign-in refused");
            refused("bad_login")
        }
        Err(DirectoryError::Refused(Refusal::BadCredentials)) => refused("bad_login"),
        Err(DirectoryError::Unavailable(why)) => {
            tracing::warn!(login = %login, error = %why, "the directory could not be asked: a sign-in refused");
            Ok(Verdict::Unavailable)
        }
    }
}

async fn sign_in_user(
    store: &dyn Store,
    user: DirectoryUser,
    typed: &str,
    refused: impl Fn(&'static str) -> Result<Verdict>,
) -> Result<Verdict> {
    // The account's own password is never used: a hash of a secret nobody keeps.
    let secret = okno_domain::ids::random_hex(32);
    let unusable_password_hash = tokio::task::spawn_blocking(move || crate::ui::hash_password(&secret))
        .await
        .map_err(|e| Error::internal(format!("hashing: {e}")))??;
    let sign_in = DirectorySignIn { login: user.login.clone(), dn: user.dn, role: user.role, unusable_password_hash };
    match store.sign_in_from_directory(sign_in).await {
        Ok(account) => Ok(Verdict::SignIn(account)),
        Err(e) if e.code == "local_account" => {
            tracing::warn!(
                login = %typed, account = %user.login,
                "a directory user's login is a local account's: the local account keeps it, the directory user is refused"
            );
            refused("bad_login")
        }
        Err(e) => Err(e),
    }
}

/// What one re-check did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recheck {
    /// Directory operators with sessions looked at.
    pub checked: usize,
    /// Refused by the directory now: their sessions ended, their accounts disabled.
    pub refused: usize,
    /// Given another role.
    pub roles_changed: usize,
}

/// Checks every directory operator with a session open against the directory once.
pub async fn recheck(store: &dyn Store, directory: &Directory) -> Result<Recheck> {
    let signed_in = store.directory_operators_signed_in().await?;
    let mut done = Recheck::default();
    if signed_in.is_empty() {
        return Ok(done);
    }
    let mut ldap = match directory.service().await {
        Ok(l) => l,
        Err(e) => return Err(unreachable_error(e)),
    };
    for op in signed_in {
        let login = &op.operator.login;
        done.checked += 1;
        match directory.check(&mut ldap, login, &op.dn).await {
            Ok(user) if user.role != op.operator.role => {
                store.directory_role(&op.operator.id, user.role).await?;
                tracing::info!(login = %login, from = %op.operator.role, to = %user.role, "a directory operator's role changed");
                done.roles_changed += 1;
            }
            Ok(_) => {}
            Err(DirectoryError::Refused(r)) => {
                let reason = refusal_reason(&r);
                store.directory_refused(&op.operator.id, reason).await?;
                tracing::warn!(login = %login, reason, "a directory operator's sessions ended: the directory no longer lets them in");
                done.refused += 1;
            }
            Err(e) => {
                let _ = tokio::time::timeout(directory.timeout, ldap.unbind()).await;
                return Err(unreachable_error(e));
            }
        }
    }
    let _ = tokio::time::timeout(directory.timeout, ldap.unbind()).await;
    Ok(done)
}

/// What the audit says of a refusal found by a re-check or a sign-in.
fn refusal_reason(r: &Refusal) -> &'static str {
    match r {
        Refusal::BadCredentials => "the directory entry is gone or no longer matches the user filter",
        Refusal::Disabled(why) => why,
        Refusal::NoRole => "in no group ldap.roles maps",
    }
}

fn unreachable_error(e: DirectoryError) -> Error {
    let why = match e {
        DirectoryError::Unavailable(why) => why,
        DirectoryError::Refused(r) => format!("{r:?}"),
    };
    Error::new(okno_domain::ErrorKind::Unavailable, "directory_unavailable", why)
}

/// Runs [`recheck`] every `recheck_secs` until okno stops (each okno process does, over every
/// directory operator's sessions).
pub fn spawn_recheck(store: Arc<dyn Store>, directory: Arc<Directory>, stop: CancellationToken) {
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(directory.recheck_every()) => {}
            }
            match recheck(store.as_ref(), &directory).await {
                Ok(r) if r.refused > 0 || r.roles_changed > 0 => {
                    tracing::info!(
                        checked = r.checked,
                        refused = r.refused,
                        roles_changed = r.roles_changed,
                        "directory re-check"
                    )
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(
                    error = %e.message,
                    "the directory re-check could not ask the directory: sessions stay as they are until it can"
                ),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=Okno Admins, OU=Groups ,DC=Example,DC=org"),
            "cn=okno admins,ou=groups,dc=example,dc=org"
        );
        assert_eq!(normalize_dn("cn=a\\,b,dc=x"), "cn=a\\,b,dc=x");
    }

    fn enabled() -> LdapSettings {
        LdapSettings {
            url: Some("ldap://127.0.0.1:389".into()),
            base_dn: "dc=example,dc=org".into(),
            roles: [("cn=staff,dc=example,dc=org".to_string(), "operator".to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn settings_are_checked_at_start() {
        LdapSettings::default().validate().unwrap();
        enabled().validate().unwrap();
        let mut s = enabled();
        s.url = Some("http://dir".into());
        assert!(s.validate().unwrap_err().message.contains("ldap://"));
        let mut s = enabled();
        s.url = Some("ldaps://dir".into());
        s.starttls = true;
        assert!(s.validate().unwrap_err().message.contains("starttls"));
        let mut s = enabled();
        s.user_filter = "(uid=x)".into();
        assert!(s.validate().unwrap_err().message.contains("{login}"));
        let mut s = enabled();
        s.roles.insert("cn=x".into(), "integration".into());
        assert!(s.validate().unwrap_err().message.contains("integration"));
        let mut s = enabled();
        s.roles.clear();
        assert!(s.validate().unwrap_err().message.contains("nobody"));
        let mut s = enabled();
        s.bind_dn = Some("cn=okno".into());
        assert!(s.validate().unwrap_err().message.contains("bind_password"));
    }

    #[test]
    fn an_active_directory_section_parses_and_a_typo_in_it_is_refused() {
        use figment::providers::{Format, Toml};
        let toml = r#"
            [ldap]
            url = "ldaps://dc1.corp.example.com"
            bind_dn = "CN=svc-okno,OU=Service Accounts,DC=corp,DC=example,DC=com"
            bind_password = "plain"
            base_dn = "OU=Staff,DC=corp,DC=example,DC=com"
            user_filter = "(&(objectCategory=person)(objectClass=user)(sAMAccountName={login}))"
            login_attribute = "sAMAccountName"
            nested_groups = "in_chain"
            [ldap.roles]
            "CN=okno Admins,OU=Groups,DC=corp,DC=example,DC=com" = "admin"
        "#;
        let s: Settings = figment::Figment::new().merge(Toml::string(toml)).extract().unwrap();
        s.validate().unwrap();
        assert_eq!((s.ldap.nested_groups, s.ldap.recheck_secs), (NestedGroups::InChain, 60));
        let typo = figment::Figment::new().merge(Toml::string("[ldap]\nrecheck_sec = 5\n")).extract::<Settings>();
        assert!(typo.unwrap_err().to_string().contains("recheck_sec"));
        let example: Settings =
            figment::Figment::new().merge(Toml::string(crate::settings::EXAMPLE)).extract().unwrap();
        assert!(!example.ldap.enabled(), "the example config leaves the directory off");
    }

    #[test]
    fn the_highest_role_of_the_groups_wins() {
        let mut s = enabled();
        s.roles.insert("cn=Admins,dc=example,dc=org".into(), "admin".into());
        s.roles.insert("cn=Viewers,dc=example,dc=org".into(), "restricted".into());
        let settings = Settings { ldap: s, ..Default::default() };
        let d = Directory::from_settings(&settings).unwrap().unwrap();
        let groups = |g: &[&str]| g.iter().map(|x| normalize_dn(x)).collect::<HashSet<_>>();
        assert_eq!(
            d.role_of(&groups(&["cn=viewers,dc=example,dc=org", "cn=staff,dc=example,dc=org"])),
            Some(Role::Operator)
        );
        assert_eq!(
            d.role_of(&groups(&["CN=Admins, DC=example,DC=org", "cn=viewers,dc=example,dc=org"])),
            Some(Role::Admin)
        );
        assert_eq!(d.role_of(&groups(&["cn=other,dc=example,dc=org"])), None);
    }

    #[test]
    fn group_filters_carry_dns_escaped() {
        let settings = Settings {
            ldap: LdapSettings { group_filter: "(objectClass=group)".into(), ..enabled() },
            ..Default::default()
        };
        let d = Directory::from_settings(&settings).unwrap().unwrap();
        let dn = r"CN=Smith\, John (IT)*,OU=Staff,DC=corp";
        assert_eq!(
            d.in_chain_filter(dn),
            r"(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Smith\5c, John \28IT\29\2a,OU=Staff,DC=corp))"
        );
        assert_eq!(
            d.member_filter(&["cn=a,dc=x".into(), "cn=b,dc=x".into()]),
            "(&(objectClass=group)(|(member=cn=a,dc=x)(uniqueMember=cn=a,dc=x)(member=cn=b,dc=x)(uniqueMember=cn=b,dc=x)))"
        );
    }

    #[test]
    fn active_directorys_disabled_bit_and_a_locked_entry_are_seen() {
        let entry = |k: &str, v: &str| SearchEntry {
            dn: "cn=x".into(),
            attrs: [(k.to_string(), vec![v.to_string()])].into(),
            bin_attrs: Default::default(),
        };
        assert_eq!(Directory::disabled(&entry("userAccountControl", "514")), Some("disabled in the directory"));
        assert_eq!(Directory::disabled(&entry("userAccountControl", "512")), None);
        assert_eq!(
            Directory::disabled(&entry("pwdAccountLockedTime", "000001010000Z")),
            Some("locked in the directory")
        );
        assert_eq!(Directory::disabled(&entry("cn", "x")), None);
    }

    #[tokio::test]
    async fn a_blank_password_is_refused_before_connecting() {
        // Port 9 on loopback: nothing listens, so reaching the directory would be Unavailable.
        let mut s = enabled();
        s.url = Some("ldap://127.0.0.1:9".into());
        let settings = Settings { ldap: s, ..Default::default() };
        let d = Directory::from_settings(&settings).unwrap().unwrap();
        for pw in ["", "   ", "\t"] {
            assert!(matches!(d.sign_in("ivan", pw).await, Err(DirectoryError::Refused(Refusal::BadCredentials))));
        }
        assert!(matches!(d.sign_in("ivan", "x").await, Err(DirectoryError::Unavailable(_))));
    }
}
