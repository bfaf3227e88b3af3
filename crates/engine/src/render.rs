//! Templates rendered apart from the server.
//!
//! MiniJinja's fuel, range and recursion limits stop a template that loops forever, but not
//! one that doubles a string thirty times: a few dozen bytes of template ask for gigabytes. So
//! the server never renders a template (or evaluates a condition) in its own process. A small
//! pool of worker processes does — okno itself, started as `okno render-worker` — each with its
//! data segment limited by `setrlimit`, at a lower priority, reading requests from standard
//! input and answering on standard output, one JSON line each. A render that outgrows its
//! memory kills its worker alone; one that takes longer than allowed has its worker killed;
//! a caller that goes away (a preview whose client hung up) kills the worker it was using.
//! Each of these is a clear error (`template_too_large`, `template_too_slow`) that previews
//! answer with and that rules, broadcasts and bots record as they record any failed render,
//! and each killed worker is counted (`okno_render_workers_killed`). A new worker takes the
//! place of a killed one at the next render.
//!
//! Syntax checks stay in the server's process: parsing takes memory in proportion to the
//! template's text, which the request body's limit already bounds.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use okno_domain::{Error, Result};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use crate::metrics::KillLabels;
use crate::templates;

/// The hidden command that makes the okno binary a render worker.
pub const WORKER_COMMAND: &str = "render-worker";

/// Limits of every render; filled from the `[templates]` settings.
#[derive(Debug, Clone)]
pub struct RenderLimits {
    /// The program started as `PROGRAM render-worker`: okno itself, or the okno binary named by
    /// a program embedding the server (its tests).
    pub program: PathBuf,
    /// Worker processes rendering at once.
    pub workers: usize,
    /// How long one render (all the templates of one message) may take.
    pub timeout_ms: u64,
    /// The longest text one template may produce.
    pub max_output_bytes: usize,
    /// The memory (data segment) one worker may take.
    pub max_memory_mb: u64,
}

impl Default for RenderLimits {
    fn default() -> Self {
        Self {
            program: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("okno")),
            workers: 4,
            timeout_ms: 2_000,
            max_output_bytes: 65_536,
            max_memory_mb: 256,
        }
    }
}

/// One thing to work out against the context.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Item {
    /// A template, rendered to text.
    Template(String),
    /// A condition, evaluated to true or false.
    Condition(String),
}

/// What a worker is asked: items against one context.
#[derive(Debug, Serialize, Deserialize)]
struct Request {
    items: Vec<Item>,
    ctx: Value,
    max_output_bytes: usize,
}

/// The answer to one item.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Text(String),
    Bool(bool),
    Failed { code: String, message: String },
}

impl Answer {
    fn from_error(e: Error) -> Self {
        Answer::Failed { code: e.code.into_owned(), message: e.message }
    }

    fn into_result(self) -> Result<Value> {
        match self {
            Answer::Text(s) => Ok(Value::String(s)),
            Answer::Bool(b) => Ok(Value::Bool(b)),
            Answer::Failed { code, message } if code.starts_with("invalid_") => Err(Error::invalid(code, message)),
            Answer::Failed { code, message } => Err(Error::unprocessable(code, message)),
        }
    }
}

fn answer(item: &Item, ctx: &Value, max_output_bytes: usize) -> Answer {
    let worked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match item {
        Item::Template(src) => templates::render_bounded(src, ctx, max_output_bytes).map(Answer::Text),
        Item::Condition(src) => templates::eval_condition(src, ctx).map(Answer::Bool),
    }));
    match worked {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => Answer::from_error(e),
        Err(_) => {
            Answer::Failed { code: "template_failed".into(), message: "the template could not be rendered".into() }
        }
    }
}

/// The worker's side: limits its own memory and priority, then answers requests from standard
/// input until it closes. Returns only when the input ends or breaks.
pub fn serve_worker(max_memory_mb: u64) -> std::io::Result<()> {
    use std::io::{BufRead, Write};
    let bytes = max_memory_mb.saturating_mul(1024 * 1024);
    rustix::process::setrlimit(
        rustix::process::Resource::Data,
        rustix::process::Rlimit { current: Some(bytes), maximum: Some(bytes) },
    )?;
    // Renders yield the processor to the server's own work.
    let _ = rustix::process::setpriority_process(None, 10);
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let line = line?;
        let answers: Vec<Answer> = match serde_json::from_str::<Request>(&line) {
            Ok(r) => r.items.iter().map(|i| answer(i, &r.ctx, r.max_output_bytes)).collect(),
            Err(e) => vec![Answer::Failed { code: "template_failed".into(), message: format!("a bad request: {e}") }],
        };
        let mut out = serde_json::to_vec(&answers).map_err(std::io::Error::other)?;
        out.push(b'\n');
        stdout.write_all(&out)?;
        stdout.flush()?;
    }
    Ok(())
}

/// One worker process and its pipes. Dropped, it is killed.
struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// Renders templates: through the pool of worker processes, or here in this process for
/// tools and tests that render templates they trust.
pub struct Renderer {
    limits: RenderLimits,
    pool: Option<Pool>,
}

struct Pool {
    idle: Mutex<Vec<Worker>>,
    slots: Semaphore,
    killed: Family<KillLabels, Counter>,
}

/// A worker in use: killed and counted if dropped before it is given back.
struct Lease<'a> {
    worker: Option<Worker>,
    pool: &'a Pool,
    /// Why it is killed if it is not given back.
    reason: &'static str,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(mut w) = self.worker.take() {
            let _ = w.child.start_kill();
            self.pool.killed.get_or_create(&KillLabels { reason: self.reason.to_string() }).inc();
            tracing::warn!(reason = self.reason, "a render worker was killed");
        }
    }
}

impl Renderer {
    /// Renders through worker processes; `killed` counts the workers killed, by reason.
    pub fn pool(limits: RenderLimits, killed: Family<KillLabels, Counter>) -> Self {
        let slots = Semaphore::new(limits.workers.max(1));
        Self { limits, pool: Some(Pool { idle: Mutex::new(Vec::new()), slots, killed }) }
    }

    /// Renders here in this process, without a memory bound: only for templates one trusts.
    pub fn in_process(limits: RenderLimits) -> Self {
        Self { limits, pool: None }
    }

    pub fn limits(&self) -> &RenderLimits {
        &self.limits
    }

    /// Works out every item against `ctx`: one answer per item (a failed render is its own
    /// error), or one error for all when the render was too large or too slow.
    pub async fn run(&self, items: Vec<Item>, ctx: &Value) -> Result<Vec<Result<Value>>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let Some(pool) = &self.pool else {
            let max = self.limits.max_output_bytes;
            return Ok(items.iter().map(|i| answer(i, ctx, max).into_result()).collect());
        };
        let n = items.len();
        let mut line =
            serde_json::to_vec(&Request { items, ctx: ctx.clone(), max_output_bytes: self.limits.max_output_bytes })
                .map_err(|e| Error::internal(format!("a render request: {e}")))?;
        line.push(b'\n');
        let _slot = pool.slots.acquire().await.map_err(|_| Error::internal("the render pool is closed"))?;
        // An idle worker that ended meanwhile (killed from outside) is left behind.
        let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if idle.as_mut().is_some_and(|w| !matches!(w.child.try_wait(), Ok(None))) {
            idle = None;
        }
        let worker = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let mut lease = Lease { worker: Some(worker), pool, reason: "cancelled" };
        let Some(w) = lease.worker.as_mut() else { return Err(Error::internal("a render worker went missing")) };
        let exchange = async {
            w.stdin.write_all(&line).await?;
            w.stdin.flush().await?;
            let mut reply = String::new();
            w.stdout.read_line(&mut reply).await?;
            Ok::<_, std::io::Error>(reply)
        };
        let reply = match tokio::time::timeout(Duration::from_millis(self.limits.timeout_ms), exchange).await {
            Err(_) => {
                lease.reason = "timeout";
                return Err(Error::unprocessable(
                    "template_too_slow",
                    format!("the template took longer than the allowed {} ms", self.limits.timeout_ms),
                ));
            }
            Ok(Ok(reply)) if !reply.is_empty() => reply,
            // The worker died in the middle: aborted by a failed allocation when the render
            // reached its memory limit (or killed by the system for its memory).
            Ok(_) => {
                lease.reason = "memory";
                let status = tokio::time::timeout(Duration::from_secs(1), w.child.wait()).await;
                tracing::warn!(?status, "a render worker ended while rendering");
                let signal = match status {
                    Ok(Ok(s)) => std::os::unix::process::ExitStatusExt::signal(&s),
                    _ => None,
                };
                if matches!(signal, Some(6 | 9)) {
                    return Err(Error::unprocessable(
                        "template_too_large",
                        format!("the template needed more than the allowed {} MB of memory", self.limits.max_memory_mb),
                    ));
                }
                lease.reason = "failed";
                return Err(Error::internal(format!(
                    "the render worker `{}` ended without answering ({status:?})",
                    self.limits.program.display()
                )));
            }
        };
        let answers: Vec<Answer> = match serde_json::from_str(&reply) {
            Ok(a) => a,
            Err(e) => {
                lease.reason = "bad_answer";
                return Err(Error::internal(format!("a render worker answered nonsense: {e}")));
            }
        };
        if answers.len() != n {
            lease.reason = "bad_answer";
            return Err(Error::internal("a render worker answered for a different request"));
        }
        if let Some(w) = lease.worker.take() {
            pool.idle.lock().unwrap_or_else(|e| e.into_inner()).push(w);
        }
        Ok(answers.into_iter().map(Answer::into_result).collect())
    }

    fn spawn(&self) -> Result<Worker> {
        let mut child = Command::new(&self.limits.program)
            .arg(WORKER_COMMAND)
            .arg("--max-memory-mb")
            .arg(self.limits.max_memory_mb.to_string())
            // The worker needs nothing of the server's environment (secrets, configuration).
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::internal(format!("cannot start the render worker `{}`: {e}", self.limits.program.display()))
            })?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(Error::internal("the render worker has no pipes"));
        };
        Ok(Worker { child, stdin, stdout: BufReader::new(stdout) })
    }

    /// Renders one template.
    pub async fn render(&self, src: &str, ctx: &Value) -> Result<String> {
        let mut texts = self.render_all(&[src], ctx).await?;
        Ok(texts.pop().unwrap_or_default())
    }

    /// Renders several templates against one context in one trip; the first failure is the
    /// error.
    pub async fn render_all(&self, srcs: &[&str], ctx: &Value) -> Result<Vec<String>> {
        let items = srcs.iter().map(|s| Item::Template(s.to_string())).collect();
        self.run(items, ctx)
            .await?
            .into_iter()
            .map(|r| r.map(|v| v.as_str().map(str::to_string).unwrap_or_default()))
            .collect()
    }

    /// Evaluates a condition; a missing field makes it false rather than an error.
    pub async fn condition(&self, src: &str, ctx: &Value) -> Result<bool> {
        let answer = self.run(vec![Item::Condition(src.to_string())], ctx).await?.pop();
        answer.unwrap_or_else(|| Err(Error::internal("no answer for a condition"))).map(|v| v.as_bool() == Some(true))
    }
}
