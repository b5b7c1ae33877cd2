//! `keyway get REF`: the payload on stdout, byte for byte.

use super::resolve::{self, Wanted};
use crate::Failed;
use crate::WIDTH;
use crate::cli::GetArgs;
use crate::output::{self, wrap};
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
            let blocks: Vec<String> = failures
                .iter()
                .map(|f| match &f.hint {
                    Some(h) => format!(
                        "error: {}\n  hint: {}",
                        wrap(&f.error, 7, 4, WIDTH),
                        wrap(&h.to_string(), 8, 4, WIDTH)
                    ),
                    None => format!("error: {}", wrap(&f.error, 7, 4, WIDTH)),
                })
                .collect();
            Err(Failed::error(blocks.join("\n")))
        }
    }
}
