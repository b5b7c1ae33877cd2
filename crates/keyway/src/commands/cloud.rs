//! `keyway cloud up` and `keyway cloud env`.

use crate::cli::{EnvArgs, UpArgs};
use anyhow::{Context, bail};
use keyway_cloud::cloud::Cloud;
use keyway_cloud::server::{self, Endpoints};
use keyway_core::{LoopbackAddr, SystemClock};
use std::process::ExitCode;
use std::sync::Arc;

pub fn up(a: UpArgs) -> anyhow::Result<ExitCode> {
    let listen: LoopbackAddr = a.listen.parse().with_context(|| format!("--listen {}", a.listen))?;
    let data = a.data.data;
    let key_file = a.key_file.unwrap_or_else(|| data.join("master.key"));
    let world = match &a.world {
        Some(p) => Some(keyway_cloud::world::load(p)?),
        None => None,
    };
    if a.reset {
        if world.is_none() {
            bail!("--reset needs --world: the store would be empty");
        }
        for f in ["cloud.db", "cloud.db-wal", "cloud.db-shm", "endpoints.json"] {
            let _ = std::fs::remove_file(data.join(f));
        }
        for d in ["users", "keys", "instances"] {
            let _ = std::fs::remove_dir_all(data.join(d));
        }
        if key_file.starts_with(&data) {
            let _ = std::fs::remove_file(&key_file);
        }
    }
    let fresh = !data.join("cloud.db").exists();
    if fresh && world.is_none() {
        bail!("{} holds no local cloud yet: pass --world FILE to create one", data.display());
    }
    let (cloud, seeded) = Cloud::open(&data, &key_file, world.as_ref(), Arc::new(SystemClock))
        .with_context(|| format!("opening the local cloud in {}", data.display()))?;
    if !seeded && a.world.is_some() && !fresh {
        tracing::warn!("{} already holds a local cloud; the world file was not re-applied (use --reset to start over)", data.display());
    }
    let cloud = Arc::new(cloud);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")?;
    rt.block_on(async move {
        let running = server::start(cloud.clone(), listen).await.context("binding the local cloud's ports")?;
        let ep = running.endpoints.clone();
        cloud.write_credential_files(&format!("{}/token", ep.google)).context("writing credential files")?;
        for name in ep.instances.keys() {
            // A VM has no gcloud login: give each an empty CLOUDSDK_CONFIG.
            let dir = data.join("instances").join(name).join("gcloud");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        ep.write(&data).with_context(|| format!("writing {}", data.join("endpoints.json").display()))?;
        println!("{}", serde_json::to_string(&ep)?);
        tracing::info!(google = %ep.google, instances = ep.instances.len(), "local cloud ready");
        wait_for_shutdown().await;
        let _ = std::fs::remove_file(data.join("endpoints.json"));
        running.abort();
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_shutdown() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        // Without signal handlers, serve until killed.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn env(a: EnvArgs) -> anyhow::Result<ExitCode> {
    let data = a.data.data;
    let ep = Endpoints::read(&data).map_err(anyhow::Error::msg)?;
    let g = &ep.google;
    let mut out = String::new();
    let mut export = |k: &str, v: &str| out.push_str(&format!("export {k}={}\n", q(v)));
    let (project, config_dir);
    if let Some(name) = &a.instance {
        let Some(i) = ep.instances.get(name) else {
            bail!("the local cloud in {} has no instance '{name}' (it has: {})", data.display(), ep.instances.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        export("GCE_METADATA_HOST", &i.metadata);
        export("GCE_METADATA_IP", &i.metadata);
        project = Some(i.project.clone());
        config_dir = data.join("instances").join(name).join("gcloud").display().to_string();
    } else {
        let email = a.user.unwrap_or_default();
        let Some(u) = ep.users.get(&email) else {
            bail!("the local cloud in {} has no user '{email}' (it has: {})", data.display(), ep.users.keys().cloned().collect::<Vec<_>>().join(", "));
        };
        project = u.project.clone();
        config_dir = u.cloudsdk_config.clone();
        // Off a VM: nothing should probe for a metadata server.
        export("NO_GCE_CHECK", "True");
    }
    export("CLOUDSDK_CONFIG", &std::path::absolute(&config_dir).unwrap_or_else(|_| config_dir.clone().into()).display().to_string());
    if let Some(p) = &project {
        export("GOOGLE_CLOUD_PROJECT", p);
        export("CLOUDSDK_CORE_PROJECT", p);
    }
    for api in ["SECRETMANAGER", "CLOUDRESOURCEMANAGER", "IAM", "IAMCREDENTIALS", "STS", "OAUTH2"] {
        export(&format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"), &format!("{g}/"));
    }
    export("CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE", &format!("{g}/compute/v1/"));
    let mut text = format!("# keyway local cloud ({}), pid {}\n", data.display(), ep.pid);
    text.push_str(&out);
    text.push_str("unset GOOGLE_APPLICATION_CREDENTIALS\n");
    if a.instance.is_none() {
        text.push_str("unset GCE_METADATA_HOST GCE_METADATA_IP\n");
    } else {
        text.push_str("unset NO_GCE_CHECK\n");
    }
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
