//! The `okno` binary: one command for running the hub and for its administration.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
use clap::{Parser, Subcommand};
use okno_domain::model::Role;
use okno_server::Settings;
use okno_store::AccountChange;

#[derive(Parser)]
#[command(name = "okno", version, about = "okno — a self-hosted omnichannel messaging hub")]
struct Cli {
    /// Configuration file (default: ./okno.toml when present).
    #[arg(long, global = true, env = "OKNO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (zero configuration: SQLite in ./okno-data, http://127.0.0.1:8080).
    Serve,
    /// API tokens.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Web operators.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of the database (SQLite: a file; PostgreSQL: a pg_dump archive).
    Backup {
        /// Where to write the copy; must not exist yet.
        dest: PathBuf,
    },
    /// Put a backup back as the database, with okno stopped (SQLite: a file from `okno backup`;
    /// PostgreSQL: its pg_dump archive). The credentials in it open only with the key they were
    /// sealed under.
    Restore {
        /// The backup to restore.
        file: PathBuf,
        /// Replace a database that holds data.
        #[arg(long)]
        force: bool,
    },
    /// Print the documented example configuration.
    DefaultConfig,
    /// The key that seals stored credentials (channel tokens, webhook secrets).
    Secrets {
        #[command(subcommand)]
        action: SecretsAction,
    },
    /// Notification rules kept in files (e.g. in version control).
    Rules {
        #[command(subcommand)]
        action: RulesAction,
    },
    /// Bot definitions kept in files (docs/bots.md).
    Bot {
        #[command(subcommand)]
        action: BotAction,
    },
    /// Try okno in five minutes: a throwaway okno with a simulated Telegram and 1C, the example
    /// bots, rules and surveys, linked demo people, a phone page and a 1C console (docs/demo.md).
    Demo {
        /// The data folder, new or empty (default: a fresh throwaway one, removed at the end).
        /// A kept folder is marked as the demo's: okno serve will not run on it.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Listen on an address other computers reach (OKNO_LISTEN=0.0.0.0:8080). Anyone who
        /// reaches it uses the phone and the 1C console, which act with the administrator's
        /// token: only on a network you trust. Without it the demo listens on 127.0.0.1 alone.
        #[arg(long)]
        public: bool,
    },
    /// Renders templates for a running okno: requests on standard input, answers on standard
    /// output, this process's memory limited (started by okno itself).
    #[command(hide = true, name = "render-worker")]
    RenderWorker {
        #[arg(long)]
        max_memory_mb: u64,
    },
}

#[derive(Subcommand)]
enum BotAction {
    /// Checks a bot definition (YAML or JSON) and attaches it to a channel, replacing the
    /// channel's bot. Nothing is saved if the file has a mistake; the error names its line.
    Apply {
        #[arg(long)]
        channel: String,
        path: PathBuf,
    },
    /// Checks a bot definition without saving it.
    Check { path: PathBuf },
}

#[derive(Subcommand)]
enum SecretsAction {
    /// Seal every stored credential under a new key, in one transaction; okno must be stopped.
    /// With the key file (the default) a new key is made and written over secret.key; with
    /// OKNO_SECRET_KEY give the new key with --new-key-stdin and set OKNO_SECRET_KEY to it
    /// before the next start.
    Rotate {
        /// Read the new key (base64 of 32 bytes, e.g. `openssl rand -base64 32`) from the
        /// first line of standard input instead of making one.
        #[arg(long)]
        new_key_stdin: bool,
    },
    /// Seal a value for okno.toml (e.g. `ldap.bind_password`) under okno's key: reads it from
    /// the first line of standard input and prints `sealed:v1:…`, which okno opens at start.
    /// Seal it again after `okno secrets rotate`.
    Seal,
}

#[derive(Subcommand)]
enum RulesAction {
    /// Checks every rule in a file (a rule or a list of rules) or in a folder of `.json`
    /// files, then creates or replaces each by name. Nothing is saved if any rule is invalid.
    Apply { path: PathBuf },
}

#[derive(Subcommand)]
enum TokenAction {
    /// Create a token; the token alone is printed on the last line.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = role_values())]
        role: String,
    },
}

#[derive(Subcommand)]
enum UserAction {
    /// Create an operator; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        login: String,
        #[arg(long, value_parser = role_values())]
        role: String,
    },
    /// List the operators: login, role, state, open sessions.
    List,
    /// Disable an operator: they cannot sign in, and their sessions end at once (on every
    /// process). The last administrator cannot be disabled.
    Disable {
        #[arg(long)]
        login: String,
    },
    /// Enable a disabled operator again.
    Enable {
        #[arg(long)]
        login: String,
    },
    /// Give an operator another role (admin, operator, restricted…).
    Role {
        #[arg(long)]
        login: String,
        #[arg(long, value_parser = role_values())]
        role: String,
    },
    /// Set an operator's password, read from standard input (one line); their sessions end.
    Password {
        #[arg(long)]
        login: String,
    },
    /// Turn off an operator's two-factor sign-in (a lost phone): their authenticator and
    /// recovery codes are forgotten; where their role requires it they set up a new one at
    /// their next sign-in.
    ResetTwoFactor {
        #[arg(long)]
        login: String,
    },
}

/// Every role, with what it may do, for `--help` and for refusing a misspelt one.
fn role_values() -> clap::builder::PossibleValuesParser {
    use clap::builder::PossibleValue;
    clap::builder::PossibleValuesParser::new([
        PossibleValue::new("admin")
            .help("everything, administration included (channels, operators, tokens, rules, bots)"),
        PossibleValue::new("operator")
            .help("the inbox, conversations, contacts, broadcasts, reports; phones and e-mails shown"),
        PossibleValue::new("restricted").help("as operator, but phone numbers and e-mails masked everywhere"),
        PossibleValue::new("integration")
            .help("for a business system: data and webhook subscriptions, no administration"),
    ])
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Command::RenderWorker { max_memory_mb } = cli.command {
        return match okno_engine::render::serve_worker(max_memory_mb) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("okno render-worker: {e}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    if let Command::DefaultConfig = cli.command {
        print!("{}", okno_server::settings::EXAMPLE);
        return std::process::ExitCode::SUCCESS;
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("okno: {}", e.message);
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(&settings);
    private_files();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("okno: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("okno: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => serve(settings).await,
        Command::Token { action: TokenAction::Create { name, role } } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e.message))?;
            let store = okno_server::open_store(&settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
            let secret = okno_server::auth::new_token();
            let token = store
                .create_token(&name, role, &okno_server::auth::token_hash(&secret))
                .await
                .map_err(|e| anyhow::anyhow!(e.message))?;
            eprintln!("created {} token `{}` (id {}); it is shown once:", token.role, token.name, token.id);
            println!("{secret}");
            Ok(())
        }
        Command::User { action: UserAction::Create { login, role } } => {
            let role = Role::parse(&role).map_err(|e| anyhow::anyhow!(e.message))?;
            if login.trim().is_empty() {
                bail!("--login must not be empty");
            }
            let hash = password_from_stdin()?;
            let store = okno_server::open_store(&settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
            let op = store.create_operator(login.trim(), role, &hash).await.map_err(|e| anyhow::anyhow!(e.message))?;
            println!("created {} operator `{}`", op.role, op.login);
            Ok(())
        }
        Command::User { action } => user(&settings, action).await,
        Command::Migrate => {
            okno_server::open_store(&settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
            println!("the database is up to date");
            Ok(())
        }
        Command::Backup { dest } => backup(&settings, &dest).await,
        Command::Restore { file, force } => restore(&settings, &file, force).await,
        Command::Secrets { action: SecretsAction::Rotate { new_key_stdin } } => {
            rotate_secrets(&settings, new_key_stdin).await
        }
        Command::Secrets { action: SecretsAction::Seal } => seal_value(&settings),
        Command::Rules { action: RulesAction::Apply { path } } => apply_rules(&settings, &path).await,
        Command::Bot { action } => bot(&settings, action).await,
        Command::Demo { data_dir, public } => demo(&settings, data_dir, public).await,
        Command::DefaultConfig | Command::RenderWorker { .. } => Ok(()),
    }
}

/// `okno secrets rotate`.
async fn rotate_secrets(settings: &Settings, new_key_stdin: bool) -> anyhow::Result<()> {
    let new_key = if new_key_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the new key from standard input")?;
        Some(okno_store::seal::SecretKey::parse(&line, "the new key").map_err(|e| anyhow::anyhow!(e.message))?)
    } else {
        None
    };
    let done = okno_server::secrets::rotate(settings, new_key).await.map_err(|e| anyhow::anyhow!(e.message))?;
    println!("{} stored credential(s) sealed again under key {} (was key {})", done.resealed, done.new_id, done.old_id);
    match done.source {
        okno_server::secrets::KeySource::File => println!(
            "the new key is in {}; back it up (the old one no longer opens anything)",
            okno_store::seal::key_files(&settings.data_dir).0.display()
        ),
        okno_server::secrets::KeySource::Setting => {
            println!("set OKNO_SECRET_KEY to the new key before starting okno (the old one no longer opens anything)")
        }
    }
    Ok(())
}

/// `okno secrets seal`.
fn seal_value(settings: &Settings) -> anyhow::Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the value from standard input")?;
    let value = line.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        bail!("nothing to seal: give the value on standard input");
    }
    let (sealed, key_id) =
        okno_server::secrets::seal_setting(settings, value).map_err(|e| anyhow::anyhow!(e.message))?;
    eprintln!("sealed under key {key_id}; put this in okno.toml (e.g. ldap.bind_password):");
    println!("{sealed}");
    Ok(())
}

/// Reads one line from standard input as a new password and hashes it (argon2id).
fn password_from_stdin() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().lock().read_line(&mut password).context("reading the password from standard input")?;
    let password = password.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        bail!("the password needs at least 8 characters");
    }
    let salt = SaltString::generate(&mut OsRng);
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// `okno user list|disable|enable|role|password|reset-two-factor`: as the operators page does, recorded in the
/// audit log as done by `cli`.
async fn user(settings: &Settings, action: UserAction) -> anyhow::Result<()> {
    let (login, change) = match action {
        UserAction::List => {
            let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
            let accounts = store.operator_accounts().await.map_err(|e| anyhow::anyhow!(e.message))?;
            for a in accounts {
                let state = if a.disabled { "disabled" } else { "active" };
                println!("{}\t{}\t{state}\t{} sessions", a.operator.login, a.operator.role, a.sessions);
            }
            return Ok(());
        }
        UserAction::Disable { login } => (login, AccountChange::Disable),
        UserAction::Enable { login } => (login, AccountChange::Enable),
        UserAction::Role { login, role } => {
            (login, AccountChange::Role(Role::parse(&role).map_err(|e| anyhow::anyhow!(e.message))?))
        }
        UserAction::Password { login } => (login, AccountChange::Password(password_from_stdin()?)),
        UserAction::ResetTwoFactor { login } => {
            let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
            let had = store.reset_totp(login.trim(), "cli").await.map_err(|e| anyhow::anyhow!(e.message))?;
            if had {
                println!("operator `{}`: two-factor sign-in is off", login.trim());
            } else {
                println!("operator `{}` had no two-factor sign-in: nothing changed", login.trim());
            }
            return Ok(());
        }
        UserAction::Create { .. } => return Ok(()),
    };
    let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let a = store.change_operator(login.trim(), change, "cli", None).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let state = if a.disabled { "disabled" } else { "active" };
    println!("operator `{}`: {}, {state}", a.operator.login, a.operator.role);
    Ok(())
}

async fn bot(settings: &Settings, action: BotAction) -> anyhow::Result<()> {
    let (channel, path) = match action {
        BotAction::Apply { channel, path } => (Some(channel), path),
        BotAction::Check { path } => (None, path),
    };
    let source = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let def = okno_engine::bots::def::BotDef::parse(&source)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message))?;
    let Some(channel) = channel else {
        println!("{}: the bot `{}` is valid", path.display(), def.name);
        return Ok(());
    };
    let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let spec = serde_json::to_value(&def)?;
    let bot = store.put_bot(&channel, &def.name, &source, spec).await.map_err(|e| anyhow::anyhow!(e.message))?;
    println!("the bot `{}` is attached to channel {}", bot.name, bot.channel_id);
    Ok(())
}

async fn apply_rules(settings: &Settings, path: &std::path::Path) -> anyhow::Result<()> {
    let mut files = Vec::new();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))? {
            let p = entry?.path();
            if p.extension().is_some_and(|e| e == "json") {
                files.push(p);
            }
        }
        files.sort();
    } else {
        files.push(path.to_path_buf());
    }
    let mut rules = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", f.display()))?;
        let list = match value {
            serde_json::Value::Array(items) => items,
            one => vec![one],
        };
        for rule in list {
            okno_engine::events::RuleSpec::parse(&rule)
                .map_err(|e| anyhow::anyhow!("{}: {}", f.display(), e.message))?;
            rules.push(rule);
        }
    }
    let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
    for rule in rules {
        let spec = okno_engine::events::RuleSpec::parse(&rule).map_err(|e| anyhow::anyhow!(e.message))?;
        let stored = serde_json::to_value(&spec)?;
        let r = store.put_rule(&spec.name, &spec.event, stored).await.map_err(|e| anyhow::anyhow!(e.message))?;
        println!("{}  {}  ({})", r.id, r.name, r.event);
    }
    Ok(())
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    if okno_demo::made_by_demo(&settings.data_dir) {
        bail!(
            "`{}` was made by `okno demo` (it holds {}): its administrator's password and API token were printed, \
             and its channels call a simulated Telegram and 1C that are gone. okno serve does not run on it; \
             give okno a folder of its own (OKNO_DATA_DIR or data_dir in okno.toml)",
            settings.data_dir.display(),
            okno_demo::MARKER
        );
    }
    let running = okno_server::start(&settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let store = running.engine.store.clone();
    tracing::info!(url = %running.public_url, data_dir = %settings.data_dir.display(), "okno is listening; the operator window is at {}/", running.public_url);
    // A fresh install: nobody can sign in yet, so say how to make the first administrator.
    match okno_server::ui::setup::setup_link(&*store, &running.public_url).await {
        Ok(Some(link)) => tracing::info!(
            "no operators yet: open {link} to create the first administrator (the link works once, for 24 hours), \
             or run: okno user create --login admin --role admin"
        ),
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(error = %e.message, "could not make a setup link; create an administrator with: okno user create --login admin --role admin")
        }
    }
    if store.list_tokens().await.map(|t| t.is_empty()).unwrap_or(false) {
        tracing::info!("no API tokens yet; create the first one with: okno token create --name admin --role admin");
    }
    let stop = running.shutdown_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight work");
        stop.cancel();
    });
    running.wait().await;
    tracing::info!("stopped");
    Ok(())
}

/// `okno demo`: starts the demo, says where to go, runs until Ctrl-C, SIGTERM or SIGHUP (the
/// terminal closed). The signals are listened for from the first moment, so one that comes
/// while the demo starts stops it as well and its throwaway folder goes.
async fn demo(settings: &Settings, data_dir: Option<PathBuf>, public: bool) -> anyhow::Result<()> {
    let mut signals = DemoSignals::install()?;
    let stop = tokio_util::sync::CancellationToken::new();
    let signalled = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        say("okno demo: stopping");
        signalled.cancel();
    });
    say("okno demo: starting okno with a simulated Telegram and a simulated 1C…");
    let options = okno_demo::Options { data_dir, public, cancel: stop.clone() };
    let demo = match okno_demo::Demo::start(settings, options).await {
        Ok(demo) => demo,
        Err(e) if e.code == "demo_cancelled" => {
            say("okno demo: stopped before it was ready");
            return Ok(());
        }
        Err(e) => bail!(e.message),
    };
    // The terminal may be gone (SIGHUP): what cannot be printed is not an error.
    let _ = writeln!(std::io::stdout(), "{}", demo.instructions());
    let shutdown = demo.shutdown_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        shutdown.cancel();
    });
    demo.wait().await;
    Ok(())
}

/// A line on stderr, if there still is one.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Ctrl-C, SIGTERM, or SIGHUP: the demo runs in a terminal, and closing it must not leave the
/// throwaway folder behind. Installed at once, before anything is started, so no signal finds
/// the process without them.
struct DemoSignals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl DemoSignals {
    fn install() -> anyhow::Result<DemoSignals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(DemoSignals {
                interrupt: signal(SignalKind::interrupt()).context("listening for Ctrl-C")?,
                terminate: signal(SignalKind::terminate()).context("listening for SIGTERM")?,
                hangup: signal(SignalKind::hangup()).context("listening for SIGHUP")?,
            })
        }
        #[cfg(not(unix))]
        Ok(DemoSignals {})
    }

    /// Waits for the first of them.
    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {},
            _ = self.terminate.recv() => {},
            _ = self.hangup.recv() => {},
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

async fn backup(settings: &Settings, dest: &std::path::Path) -> anyhow::Result<()> {
    let url = settings.database_url();
    if url.starts_with("postgres") {
        if dest.exists() {
            bail!("`{}` already exists", dest.display());
        }
        let status = tokio::process::Command::new("pg_dump")
            .arg("--format=custom")
            .arg("--file")
            .arg(dest)
            .arg("--dbname")
            .arg(&url)
            .status()
            .await
            .context("running pg_dump (install the PostgreSQL client tools)")?;
        if !status.success() {
            bail!("pg_dump failed with {status}");
        }
    } else {
        let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
        store.backup(dest).await.map_err(|e| anyhow::anyhow!(e.message))?;
    }
    println!("backup written to {}", dest.display());
    let key = match settings.secret_key {
        Some(_) => "OKNO_SECRET_KEY".to_string(),
        None => okno_store::seal::key_files(&settings.data_dir).0.display().to_string(),
    };
    println!(
        "the channels' and webhooks' credentials in it are sealed: it is of use only with the key ({key}); keep a copy of the key, apart from the backups"
    );
    Ok(())
}

async fn restore(settings: &Settings, file: &std::path::Path, force: bool) -> anyhow::Result<()> {
    okno_store::restore::restore(&settings.database_url(), file, force)
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    // Brought up to this okno's migrations, and its credentials tried with the key.
    let store = okno_server::open_store(settings).await.map_err(|e| anyhow::anyhow!(e.message))?;
    let conversations = store
        .list_conversations(Default::default(), okno_store::PageRequest::new(Some(1), None))
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let queued = store.queue_depth().await.map_err(|e| anyhow::anyhow!(e.message))?;
    println!(
        "restored {}: {} queued jobs will run when okno starts{}",
        file.display(),
        queued,
        if conversations.items.is_empty() { " (no conversations in it)" } else { "" }
    );
    Ok(())
}

/// Everything okno creates — the data folder, the database, attachments, the secret key,
/// backups — is readable by okno's user alone, whatever umask it was started with.
fn private_files() {
    #[cfg(unix)]
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
}

fn init_logging(settings: &Settings) {
    let filter = tracing_subscriber::EnvFilter::try_new(&settings.log_level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.log_format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}
