//! `keyway get REF`: the payload on stdout, byte for byte.

use super::resolve::{self, Wanted};
use crate::WIDTH;
use crate::cli::GetArgs;
use crate::output::{self, errln, wrap};
use anyhow::Context;
use keyway_core::{Env, SecretRef};
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
            for v in values {
                output::stdout(v.expose())?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(failures) => {
            for f in &failures {
                errln!("error: {}", wrap(&f.error, 7, 4, WIDTH));
                if let Some(h) = &f.hint {
                    errln!("  hint: {}", wrap(h, 8, 4, WIDTH));
                }
            }
            Ok(ExitCode::from(1))
        }
    }
}
