//! `keyway cloud up` and `keyway cloud env` (a Google user or VM; an EC2
//! instance; an ECS task, whose start resolves its `secrets` in the cloud).

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
        for f in ["cloud.db", "cloud.db-wal", "cloud.db-shm", "endpoints.json", "control.token"] {
            let _ = std::fs::remove_file(data.join(f));
        }
        for d in ["users", "keys", "instances", "aws", "tasks", "ec2"] {
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
        let _ = std::fs::remove_file(data.join("control.token"));
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
    if let Some(task) = &a.task {
        return aws_env(&data, &ep, AwsTarget::Task(task));
    }
    if let Some(u) = &a.aws_user {
        return aws_env(&data, &ep, AwsTarget::User(u));
    }
    if let Some(name) = a.instance.as_deref().filter(|n| !ep.instances.contains_key(*n) && ep.ec2.contains_key(*n)) {
        return aws_env(&data, &ep, AwsTarget::Ec2(name));
    }
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

enum AwsTarget<'a> {
    Task(&'a str),
    User(&'a str),
    Ec2(&'a str),
}

/// Asks the running cloud to start `task` (resolve its secrets with the execution role).
fn start_task(ep: &Endpoints, task: &str) -> anyhow::Result<keyway_cloud::aws::compute::TaskStart> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting the async runtime")?;
    let url = format!("{}/_keyway/ecs/start-task", ep.aws);
    rt.block_on(async {
        let r = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(&url)
            .bearer_auth(&ep.control_token)
            .json(&serde_json::json!({ "task": task }))
            .send()
            .await
            .with_context(|| format!("calling the local cloud at {}", ep.aws))?;
        let ok = r.status().is_success();
        let body: serde_json::Value = r.json().await.context("reading the local cloud's answer")?;
        if !ok {
            let msg = body.get("message").and_then(|m| m.as_str()).unwrap_or("the task failed to start");
            bail!("ECS task '{task}' stopped: {msg}");
        }
        Ok(serde_json::from_value(body)?)
    })
}

fn aws_env(data: &std::path::Path, ep: &Endpoints, target: AwsTarget<'_>) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let mut export = |k: &str, v: &str| out.push_str(&format!("export {k}={}\n", q(v)));
    let g = &ep.google;
    let mut unset = vec![
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
        "GOOGLE_APPLICATION_CREDENTIALS", "GCE_METADATA_HOST", "GCE_METADATA_IP",
    ];
    let (header, config_dir) = match target {
        AwsTarget::Task(name) => {
            let Some(t) = ep.tasks.get(name) else {
                bail!("the local cloud in {} has no ECS task '{name}' (it has: {})", data.display(), ep.tasks.keys().cloned().collect::<Vec<_>>().join(", "));
            };
            // ECS resolves `secrets` before the container exists: a denial means no start.
            let start = start_task(ep, name)?;
            export("AWS_REGION", &t.region);
            export("AWS_DEFAULT_REGION", &t.region);
            export("AWS_EXECUTION_ENV", "AWS_ECS_FARGATE");
            export("ECS_CONTAINER_METADATA_URI_V4", &format!("{}{}", t.agent, t.metadata_path));
            export("AWS_EC2_METADATA_DISABLED", "true");
            match (&t.credentials_path, &start.auth_token) {
                (Some(p), Some(tok)) => {
                    export("AWS_CONTAINER_CREDENTIALS_FULL_URI", &format!("{}{p}", t.agent));
                    export("AWS_CONTAINER_AUTHORIZATION_TOKEN", tok);
                }
                // No task role: no credentials variable at all, as in a real task.
                _ => unset.extend(["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN"]),
            }
            // A container has no ~/.aws: keep the developer's files out of it.
            export("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            export("AWS_CONFIG_FILE", "/dev/null");
            unset.push("AWS_EC2_METADATA_SERVICE_ENDPOINT");
            for (k, v) in &start.secrets {
                export(k, v);
            }
            (format!("ECS task {name}"), data.join("tasks").join(name).join("gcloud"))
        }
        AwsTarget::User(name) => {
            let found: Vec<(&String, &keyway_cloud::server::AwsUserEndpoint)> =
                ep.aws_users.iter().filter(|(k, _)| *k == name || k.rsplit_once('/').is_some_and(|(_, n)| n == name)).collect();
            let [(key, u)] = found.as_slice() else {
                bail!(
                    "the local cloud in {} has no single AWS user '{name}' (it has: {}); name it as ACCOUNT/NAME",
                    data.display(),
                    ep.aws_users.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            };
            export("AWS_SHARED_CREDENTIALS_FILE", &u.credentials_file);
            export("AWS_CONFIG_FILE", "/dev/null");
            export("AWS_REGION", &u.region);
            export("AWS_DEFAULT_REGION", &u.region);
            // Off EC2/ECS: nothing should probe for instance or container credentials.
            export("AWS_EC2_METADATA_DISABLED", "true");
            unset.extend(["AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_SERVICE_ENDPOINT"]);
            (format!("AWS IAM user {key}"), data.join("aws").join("users").join(key.as_str()).join("gcloud"))
        }
        AwsTarget::Ec2(name) => {
            let Some(i) = ep.ec2.get(name) else { bail!("the local cloud has no EC2 instance '{name}'") };
            export("AWS_EC2_METADATA_SERVICE_ENDPOINT", &i.imds);
            export("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4");
            export("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            export("AWS_CONFIG_FILE", "/dev/null");
            unset.extend(["AWS_EC2_METADATA_DISABLED", "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_REGION", "AWS_DEFAULT_REGION"]);
            (format!("EC2 instance {name} ({})", i.instance_id), data.join("ec2").join(name).join("gcloud"))
        }
    };
    export("AWS_ENDPOINT_URL", &ep.aws);
    export("AWS_ENDPOINT_URL_SECRETSMANAGER", &ep.aws);
    export("AWS_ENDPOINT_URL_STS", &ep.aws);
    // Google, reached from AWS compute: no metadata server, the local Google APIs.
    std::fs::create_dir_all(&config_dir).with_context(|| format!("creating {}", config_dir.display()))?;
    export("CLOUDSDK_CONFIG", &std::path::absolute(&config_dir).unwrap_or(config_dir.clone()).display().to_string());
    export("NO_GCE_CHECK", "True");
    for api in ["SECRETMANAGER", "CLOUDRESOURCEMANAGER", "IAM", "IAMCREDENTIALS", "STS", "OAUTH2"] {
        export(&format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"), &format!("{g}/"));
    }
    print!("# keyway local cloud ({}), pid {}, {header}\n{out}unset {}\n", data.display(), ep.pid, unset.join(" "));
    Ok(ExitCode::SUCCESS)
}
