//! `keyway get REF`: the payload on stdout, byte for byte.

use super::resolve::{self, Wanted};
use crate::cli::GetArgs;
use anyhow::Context;
use keyway_core::{Env, SecretRef};
use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

pub fn run(a: GetArgs, env: Env) -> anyhow::Result<ExitCode> {
    let reference = SecretRef::parse(&a.reference)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let wanted = [Wanted {
        name: "get".into(),
        reference,
    }];
    match rt.block_on(resolve::resolve(
        &env,
        &wanted,
        1,
        Duration::from_secs(a.timeout),
    )) {
        Ok(values) => {
            let mut out = std::io::stdout().lock();
            for v in values {
                out.write_all(v.expose()).context("writing to stdout")?;
            }
            out.flush().context("writing to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(failures) => {
            for f in &failures {
                eprintln!("error: {}", f.error);
                if let Some(h) = &f.hint {
                    eprintln!("  hint: {h}");
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}
