//! `keyway serve`: the broker as a sidecar. Resolves the credentials behind
//! each API, serves them on loopback until SIGINT/SIGTERM, and prints (and
//! writes to --env-file) the variables the workloads beside it need.

use super::broker::{self, Wanted};
use crate::cli::ServeArgs;
use anyhow::Context;
use keyway_broker::Token;
use keyway_core::{Env, Secret};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub fn run(a: ServeArgs, env: Env) -> anyhow::Result<ExitCode> {
    let wanted = Wanted::parse(&a.apis)?;
    // One thread: a sidecar's requests are tiny and mostly cache hits; one
    // thread keeps them off cross-thread wake-ups (faster and steadier on a
    // small task than two workers) and keeps the resident memory small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut cleanup = Cleanup::default();
        let (token, token_path) = match &a.token_file {
            Some(p) => (token_from(p, &mut cleanup)?, p.clone()),
            None => {
                let dir = private_dir(&env)?;
                cleanup.dirs.push(dir.clone());
                let p = dir.join("token");
                (token_from(&p, &mut cleanup)?, p)
            }
        };
        let project = broker::project(&env, a.project.clone(), a.project_number.clone());
        let ttl = std::time::Duration::from_secs(a.secrets_ttl);
        let running = broker::start(&env, &wanted, a.listen, project, Arc::new(token), ttl).await?;
        let token_shown = (running.child.aws_token_file || running.child.secrets_token_file)
            .then(|| token_path.display().to_string());
        let lines = running.child.shell(token_shown.as_deref());
        if let Some(f) = &a.env_file {
            write_atomically(f, lines.as_bytes(), 0o644)?;
            cleanup.files.push(f.clone());
        }
        let mut out = std::io::stdout().lock();
        out.write_all(lines.as_bytes())
            .and_then(|_| out.flush())
            .context("writing to stdout")?;
        drop(out);
        crate::output::errln!(
            "keyway serve: {} on http://{} (until SIGINT or SIGTERM)",
            running.apis.join(", "),
            running.addr
        );
        wait_for_signal().await?;
        tracing::info!("stopping the broker");
        running.server.shutdown().await;
        cleanup.run();
        Ok(ExitCode::SUCCESS)
    })
}

/// Files and directories this run created, removed at exit.
#[derive(Default)]
struct Cleanup {
    files: Vec<PathBuf>,
    dirs: Vec<PathBuf>,
}

impl Cleanup {
    fn run(&self) {
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
        for d in &self.dirs {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

/// The token in `path`, or a fresh one written there (0440, created exclusively).
fn token_from(path: &Path, cleanup: &mut Cleanup) -> anyhow::Result<Token> {
    match std::fs::read_to_string(path) {
        Ok(s) => Token::new(Secret::new(s.trim().to_owned()))
            .map_err(|why| anyhow::anyhow!("the token in {}: {why}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = Token::random();
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o440)
                .open(path)
                .with_context(|| format!("creating the token file {}", path.display()))?;
            f.write_all(token.expose().as_bytes())
                .with_context(|| format!("writing the token file {}", path.display()))?;
            cleanup.files.push(path.to_path_buf());
            Ok(token)
        }
        Err(e) => Err(e).with_context(|| format!("reading the token file {}", path.display())),
    }
}

/// A 0700 directory for this run: on XDG_RUNTIME_DIR if set, else /dev/shm
/// (tmpfs), else TMPDIR, else /tmp.
fn private_dir(env: &Env) -> anyhow::Result<PathBuf> {
    let base = env
        .non_empty(keyway_core::vars::XDG_RUNTIME_DIR)
        .map(PathBuf::from)
        .filter(|p| p.is_dir())
        .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
        .unwrap_or_else(|| {
            PathBuf::from(env.non_empty(keyway_core::vars::TMPDIR).unwrap_or("/tmp"))
        });
    let dir = base.join(format!("keyway-serve-{}", std::process::id()));
    std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    Ok(dir)
}

fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
