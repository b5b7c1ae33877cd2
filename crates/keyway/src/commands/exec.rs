//! `keyway exec`: resolve, fail closed, then hand over to keyway-exec.

use super::resolve::{self, Wanted};
use super::watch::Watch;
use crate::Failed;
use crate::WIDTH;
use crate::cli::ExecArgs;
use crate::output::wrap;
use anyhow::Context;
use keyway_core::{Delivery, Env, SecretRef};
use keyway_exec::{Plan, TmpfsPolicy};
use std::process::ExitCode;
use std::time::Duration;

/// keyway's own failure before the command could start (the convention of env(1) and docker).
pub const EXIT_KEYWAY_FAILED: u8 = 125;

pub fn run(a: ExecArgs, env: Env) -> anyhow::Result<ExitCode> {
    // `--watch 30s -- app` would run a program named 30s: the interval needs `=`.
    if a.watch.is_some()
        && let Some(first) = a.command.first().and_then(|c| c.to_str())
        && crate::cli::parse_interval(first).is_ok()
    {
        // A usage error: printed by main, which exits 125 for exec.
        anyhow::bail!(
            "'{first}' would be run as the command: an interval is given as --watch={first}"
        );
    }
    let mut wanted: Vec<Wanted> = Vec::new();
    let mut bad = Vec::new();
    for spec in &a.env {
        let Some((name, reference)) = spec.split_once('=') else {
            bad.push(format!("--env {spec}: expected NAME=REFERENCE"));
            continue;
        };
        match SecretRef::parse(reference) {
            Ok(r) => wanted.push(Wanted {
                name: name.to_owned(),
                reference: r,
            }),
            Err(e) => bad.push(format!("--env {name}: {e}")),
        }
    }
    if !a.no_inherited {
        for (name, value) in env.iter() {
            if wanted.iter().any(|w| w.name == name) {
                continue;
            }
            match SecretRef::parse_implicit(value) {
                Ok(Some(r)) => wanted.push(Wanted {
                    name: name.to_owned(),
                    reference: r,
                }),
                Ok(None) => {}
                Err(e) => bad.push(format!("inherited variable {name}: {e}")),
            }
        }
    }
    if !bad.is_empty() {
        let mut m = String::from("error: invalid secret references; nothing was run");
        for b in &bad {
            m.push_str(&format!("\n  {}", wrap(b, 2, 4, WIDTH)));
        }
        return Err(Failed::error(m));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        let mut resolver =
            resolve::Resolver::new(&env, a.concurrency as usize, Duration::from_secs(a.timeout));
        let fetched = match resolver.resolve(&wanted).await {
            Ok(v) => v,
            Err(failures) => return Err(resolve::unresolved(&failures)),
        };
        tracing::info!(references = wanted.len(), "all references resolved");
        let watch = match a.watch {
            Some(_) if wanted.is_empty() => {
                tracing::warn!("--watch: the command has no secret references to watch");
                None
            }
            Some(interval) => Some(Watch::new(
                resolver,
                wanted.clone(),
                &fetched,
                interval,
                a.on_change,
            )?),
            None => None,
        };
        let mut env = env;
        let broker = match &a.broker {
            Some(apis) => match super::broker::exec(&mut env, apis, a.broker_listen).await {
                Ok(b) => Some(b),
                // Printed by main, which exits 125 for exec.
                Err(e) => return Err(e),
            },
            None => None,
        };
        let mut args = a.command.into_iter();
        let program = args.next().context("no command given")?;
        let mut plan = Plan::new(program, env).args(args);
        if let Some(b) = &broker {
            plan = b.deliver(plan);
        }
        plan.tmp = TmpfsPolicy::Require;
        plan.die_with_keyway = !a.keep_running_if_keyway_dies;
        for (w, v) in wanted.iter().zip(fetched.into_iter().map(|f| f.value)) {
            plan = match &w.reference.delivery {
                Delivery::Value => plan.var(w.name.clone(), v),
                Delivery::File { .. } => {
                    plan.file(w.name.clone(), w.reference.file_name(&w.name), v)
                }
            };
        }
        let exit = match watch {
            None => keyway_exec::run(plan).await,
            Some(watch) => {
                let (updater, updates) = keyway_exec::updates(a.stop_timeout);
                let run = keyway_exec::run_with_updates(plan, updates);
                tokio::pin!(run);
                // The watch ends only when the workload has: then `run` is about to return.
                tokio::select! {
                    exit = &mut run => exit,
                    () = watch.run(updater) => run.await,
                }
            }
        };
        if let Some(b) = broker {
            b.stop().await;
        }
        match exit {
            Ok(exit) => Ok(exit.into()),
            Err(e) => Err(Failed {
                message: format!("error: {}", wrap(&e.to_string(), 7, 4, WIDTH)),
                status: Some(e.exit_code()),
            }
            .into()),
        }
    })
}
