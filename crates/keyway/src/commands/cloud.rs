//! `keyway cloud up`, `keyway cloud env` (a Google user, with gcloud logged
//! in, or VM; an AWS IAM user, with the aws CLI configured; an EC2 instance;
//! an ECS task, whose start runs its family's newest task definition and
//! resolves its `secrets` in the cloud) and `keyway cloud cred-config` (a
//! Workload Identity Federation credential file).

use crate::cli::{CredConfigArgs, EnvArgs, SourceType, UpArgs};
use anyhow::{Context, bail};
use keyway_cloud::cloud::{Cloud, CredSource};
use keyway_cloud::server::{self, Endpoints};
use keyway_core::{Env, LoopbackAddr, SystemClock};
use keyway_http::{Call, Cap};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// How long `cloud env` waits for the running local cloud's answer (the whole
/// request, body included; the body is read under a 1 MiB cap).
const LOCAL_CLOUD_TIMEOUT: Duration = Duration::from_secs(30);

pub fn up(a: UpArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let listen: LoopbackAddr = a
        .listen
        .parse()
        .with_context(|| format!("--listen {}", a.listen))?;
    // Every path the cloud prints or writes is absolute: it must still work
    // after the user changes directory.
    let data = absolute(&a.data.dir(env))?;
    let key_file = match crate::cli::key_file(a.key_file, env) {
        Some(k) => absolute(&k)?,
        None => data.join("master.key"),
    };
    let world = match &a.world {
        Some(p) => Some(keyway_cloud::world::load(p)?),
        None => None,
    };
    // One running cloud per data directory, held until this process ends;
    // taken before anything in it is read, reset or written.
    let _lock = keyway_cloud::datadir::lock(&data)?;
    // Nothing else runs here, so these are a dead instance's.
    for f in ["endpoints.json", "control.token"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    // Private to its owner, also when an older keyway made it.
    keyway_cloud::datadir::make_private(&data)
        .with_context(|| format!("making {} private", data.display()))?;
    if a.reset {
        if world.is_none() {
            bail!("--reset needs --world: the store would be empty");
        }
        for f in [
            "cloud.db",
            "cloud.db-wal",
            "cloud.db-shm",
            "endpoints.json",
            "control.token",
        ] {
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
        bail!(
            "{} holds no local cloud yet: pass --world FILE to create one",
            data.display()
        );
    }
    let clock: Arc<dyn keyway_core::Clock> = match a.clock_offset {
        Some(off) => Arc::new(keyway_cloud::time::OffsetClock::new(
            Arc::new(SystemClock),
            off.as_millis() as i64,
        )),
        None => Arc::new(SystemClock),
    };
    let (cloud, seeded) = match Cloud::open(&data, &key_file, world.as_ref(), clock) {
        Err(keyway_cloud::cloud::CloudError::WorldDiffers { .. }) => {
            let w = absolute(a.world.as_deref().unwrap_or(std::path::Path::new("")))?;
            bail!(
                "{} holds a local cloud seeded from a different world file than {}: after its first start the store is the truth, and this world was not applied.\n\
                     To start over from {}, deleting the store (its secrets, keys and changes):\n  \
                     keyway cloud up --world {} --data {} --reset\n\
                     Or keep it: start without --world, or with the world file it was seeded from.",
                data.display(),
                w.display(),
                w.display(),
                q(&w.display().to_string()),
                q(&data.display().to_string()),
            );
        }
        r => r.with_context(|| format!("opening the local cloud in {}", data.display()))?,
    };
    if !seeded && a.world.is_some() && !fresh && cloud.seeded_from()?.is_none() {
        tracing::warn!(
            "{} was seeded by an older keyway, which recorded no world file: the world file was not re-applied (use --reset to start over from it)",
            data.display()
        );
    }
    let cloud = Arc::new(cloud);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(async move {
        // Handlers first: a SIGTERM sent as soon as the endpoints appear must
        // still stop the cloud cleanly.
        let shutdown = shutdown_signals()?;
        let running = server::start(cloud.clone(), listen)
            .await
            .context("binding the local cloud's ports")?;
        let ep = running.endpoints.clone();
        cloud
            .write_credential_files(&format!("{}/token", ep.google))
            .context("writing credential files")?;
        for name in ep.instances.keys() {
            // A VM has no gcloud login: give each an empty CLOUDSDK_CONFIG.
            let dir = data.join("instances").join(name).join("gcloud");
            keyway_cloud::datadir::private_dir(&dir)
                .with_context(|| format!("creating {}", dir.display()))?;
        }
        ep.write(&data)
            .with_context(|| format!("writing {}", data.join("endpoints.json").display()))?;
        crate::output::outln!("{}", serde_json::to_string(&ep)?)?;
        tracing::info!(google = %ep.google, instances = ep.instances.len(), "local cloud ready");
        shutdown.await;
        ep.remove_written(&data);
        running.shutdown().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Installs SIGTERM and SIGINT handlers now; the future ends at the first signal.
fn shutdown_signals() -> anyhow::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
    })
}

fn absolute(p: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::path::absolute(p).with_context(|| format!("resolving {}", p.display()))
}

/// "it has: a, b", or "it has no NOUN" when there are none: never an empty list.
fn it_has<'a>(names: impl Iterator<Item = &'a String>, noun: &str) -> String {
    let names: Vec<&str> = names.map(String::as_str).collect();
    if names.is_empty() {
        format!("it has no {noun}")
    } else {
        format!("it has: {}", names.join(", "))
    }
}

fn q(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn env(a: EnvArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let data = absolute(&a.data.dir(env))?;
    let ep = Endpoints::read(&data).map_err(anyhow::Error::msg)?;
    if let Some(task) = &a.task {
        return aws_env(&data, &ep, AwsTarget::Task(task));
    }
    if let Some(u) = &a.aws_user {
        return aws_env(&data, &ep, AwsTarget::User(u));
    }
    if let Some(name) = a
        .instance
        .as_deref()
        .filter(|n| !ep.instances.contains_key(*n) && ep.ec2.contains_key(*n))
    {
        return aws_env(&data, &ep, AwsTarget::Ec2(name));
    }
    let g = &ep.google;
    let mut out = String::new();
    let mut export = |k: &str, v: &str| out.push_str(&format!("export {k}={}\n", q(v)));
    let (project, config_dir);
    if let Some(name) = &a.instance {
        let Some(i) = ep.instances.get(name) else {
            bail!(
                "the local cloud in {} has no instance '{name}' ({})",
                data.display(),
                it_has(ep.instances.keys().chain(ep.ec2.keys()), "VMs")
            );
        };
        export("GCE_METADATA_HOST", &i.metadata);
        export("GCE_METADATA_IP", &i.metadata);
        project = Some(i.project.clone());
        config_dir = data
            .join("instances")
            .join(name)
            .join("gcloud")
            .display()
            .to_string();
    } else {
        let email = a.user.unwrap_or_default();
        let Some(u) = ep.users.get(&email) else {
            bail!(
                "the local cloud in {} has no user '{email}' ({})",
                data.display(),
                it_has(ep.users.keys(), "users")
            );
        };
        project = u.project.clone();
        config_dir = u.cloudsdk_config.clone();
        // Off a VM: nothing should probe for a metadata server.
        export("NO_GCE_CHECK", "True");
        export("CLOUDSDK_CORE_CHECK_GCE_METADATA", "false");
        // gcloud itself: logged in as the user, with a fresh access token in a
        // private file (gcloud never sees the refresh token).
        let dir = absolute(std::path::Path::new(&config_dir))?;
        let token_file = write_gcloud_token(&dir, g)
            .with_context(|| format!("giving gcloud an access token for {email}"))?;
        export(
            "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE",
            &token_file.display().to_string(),
        );
        export("CLOUDSDK_CORE_ACCOUNT", &email);
    }
    export(
        "CLOUDSDK_CONFIG",
        &absolute(std::path::Path::new(&config_dir))?
            .display()
            .to_string(),
    );
    if let Some(p) = &project {
        export("GOOGLE_CLOUD_PROJECT", p);
        export("CLOUDSDK_CORE_PROJECT", p);
    }
    gcloud_settings(&mut export, g);
    // AWS, reached from Google compute or a developer's machine: the local AWS
    // APIs (for AssumeRoleWithWebIdentity with a Google ID token, or a user's
    // own AWS setup), no instance or container credentials, no shared files
    // from the real home directory.
    aws_endpoints(&mut export, &ep.aws);
    export("AWS_EC2_METADATA_DISABLED", "true");
    export("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
    export("AWS_CONFIG_FILE", "/dev/null");
    let mut text = format!(
        "# keyway local cloud ({}), pid {}\n",
        data.display(),
        ep.pid
    );
    text.push_str(&out);
    text.push_str("unset GOOGLE_APPLICATION_CREDENTIALS AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_CREDENTIALS_RELATIVE_URI AWS_CONTAINER_AUTHORIZATION_TOKEN AWS_WEB_IDENTITY_TOKEN_FILE AWS_EC2_METADATA_SERVICE_ENDPOINT\n");
    if a.instance.is_none() {
        text.push_str("unset GCE_METADATA_HOST GCE_METADATA_IP\n");
    } else {
        text.push_str("unset NO_GCE_CHECK\n");
    }
    crate::output::out!("{text}")?;
    Ok(ExitCode::SUCCESS)
}

/// The Google APIs gcloud and the client libraries reach through
/// `CLOUDSDK_API_ENDPOINT_OVERRIDES_*` (all on the one Google port; Compute's
/// override carries its `compute/v1/` path, as gcloud expects of it).
const GOOGLE_APIS: [&str; 6] = [
    "SECRETMANAGER",
    "CLOUDRESOURCEMANAGER",
    "IAM",
    "IAMCREDENTIALS",
    "STS",
    "OAUTH2",
];

/// The Google side every environment shares: the endpoint overrides, and a
/// gcloud that never prompts, never checks for updates and reports nothing.
fn gcloud_settings(export: &mut impl FnMut(&str, &str), google: &str) {
    for api in GOOGLE_APIS {
        export(
            &format!("CLOUDSDK_API_ENDPOINT_OVERRIDES_{api}"),
            &format!("{google}/"),
        );
    }
    export(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_COMPUTE",
        &format!("{google}/compute/v1/"),
    );
    export("CLOUDSDK_CORE_DISABLE_PROMPTS", "1");
    export("CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK", "true");
    export("CLOUDSDK_CORE_DISABLE_USAGE_REPORTING", "true");
    export("CLOUDSDK_SURVEY_DISABLE_PROMPTS", "true");
}

/// The AWS APIs of the local cloud, for the SDKs and the aws CLI: one port for
/// every service (IAM is global, so it gets its own variable as well as the
/// general one), and no pager.
fn aws_endpoints(export: &mut impl FnMut(&str, &str), aws: &str) {
    export("AWS_ENDPOINT_URL", aws);
    for service in ["SECRETSMANAGER", "STS", "IAM", "ECS"] {
        export(&format!("AWS_ENDPOINT_URL_{service}"), aws);
    }
    export("AWS_PAGER", "");
}

/// Gets a fresh access token for the user whose gcloud ADC file is in `dir`
/// (the OAuth refresh-token grant, against the running cloud's token endpoint)
/// and writes it to `dir/keyway-access-token` (0600), the file gcloud reads
/// through `CLOUDSDK_AUTH_ACCESS_TOKEN_FILE`. The token lives as long as the
/// cloud's access tokens do (an hour by default); run `keyway cloud env` again
/// for a new one.
fn write_gcloud_token(dir: &std::path::Path, google: &str) -> anyhow::Result<std::path::PathBuf> {
    let adc = dir.join("application_default_credentials.json");
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(&adc).with_context(|| format!("reading {}", adc.display()))?,
    );
    let file: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a credentials file", adc.display()))?;
    let field = |k: &str| {
        file.get(k)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("{} has no `{k}`", adc.display()))
    };
    let form = [
        ("grant_type", "refresh_token".to_owned()),
        ("client_id", field("client_id")?),
        ("client_secret", field("client_secret")?),
        ("refresh_token", field("refresh_token")?),
    ];
    let url = format!("{google}/token");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let token = rt.block_on(async {
        let request = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(&url)
            .form(&form);
        let call = Call {
            doing: "refreshing the user's token at the local cloud",
            url: &url,
            cap: Cap::mib(1),
        };
        let r = keyway_http::exchange(request, LOCAL_CLOUD_TIMEOUT, &call).await?;
        let status = r.status;
        let status_ok = (200..300).contains(&status);
        let body: serde_json::Value = serde_json::from_slice(r.body.expose())
            .context("reading the local cloud's token answer (not JSON)")?;
        match body.get("access_token").and_then(|t| t.as_str()) {
            Some(t) if status_ok => Ok(zeroize::Zeroizing::new(t.to_owned())),
            // The OAuth error code and description never carry the token.
            _ => bail!(
                "the local cloud refused the refresh token ({status}: {} {})",
                body.get("error").and_then(|v| v.as_str()).unwrap_or(""),
                body.get("error_description")
                    .and_then(|v| v.as_str())
                    .unwrap_or("")
            ),
        }
    })?;
    let path = dir.join("keyway-access-token");
    write_private(&path, token.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

enum AwsTarget<'a> {
    Task(&'a str),
    User(&'a str),
    Ec2(&'a str),
}

/// Asks the running cloud to start `task` (resolve its secrets with the execution role).
fn start_task(ep: &Endpoints, task: &str) -> anyhow::Result<keyway_cloud::aws::compute::TaskStart> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let url = format!("{}/_keyway/ecs/start-task", ep.aws);
    rt.block_on(async {
        let request = reqwest::Client::builder()
            .no_proxy()
            .build()?
            .post(&url)
            .bearer_auth(&ep.control_token)
            .json(&serde_json::json!({ "task": task }));
        let call = Call {
            doing: "starting an ECS task at the local cloud",
            url: &url,
            cap: Cap::mib(1),
        };
        let r = keyway_http::exchange(request, LOCAL_CLOUD_TIMEOUT, &call).await?;
        let ok = (200..300).contains(&r.status);
        let body: serde_json::Value = serde_json::from_slice(r.body.expose())
            .context("reading the local cloud's answer (not JSON)")?;
        if !ok {
            let msg = body
                .get("message")
                .and_then(|m| m.as_str())
                .unwrap_or("the task failed to start");
            bail!("ECS task '{task}' stopped: {msg}");
        }
        Ok(serde_json::from_value(body)?)
    })
}

fn aws_env(
    data: &std::path::Path,
    ep: &Endpoints,
    target: AwsTarget<'_>,
) -> anyhow::Result<ExitCode> {
    let mut out = String::new();
    let mut export = |k: &str, v: &str| out.push_str(&format!("export {k}={}\n", q(v)));
    let g = &ep.google;
    let mut unset = vec![
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
    ];
    let (header, config_dir) = match target {
        AwsTarget::Task(name) => {
            let Some(t) = ep.tasks.get(name) else {
                bail!(
                    "the local cloud in {} has no ECS task '{name}' ({})",
                    data.display(),
                    it_has(ep.tasks.keys(), "ECS tasks")
                );
            };
            // ECS resolves `secrets` before the container exists: a denial means no start.
            let start = start_task(ep, name)?;
            export("AWS_REGION", &t.region);
            export("AWS_DEFAULT_REGION", &t.region);
            export(
                "ECS_CONTAINER_METADATA_URI_V4",
                &format!("{}{}", t.agent, t.metadata_path),
            );
            match &t.node_imds {
                // The EC2 launch type: the node's IMDS answers the containers too
                // (nothing blocks it here), as on an instance without
                // ECS_AWSVPC_BLOCK_IMDS or a hop limit of 1.
                Some(imds) => {
                    export("AWS_EXECUTION_ENV", "AWS_ECS_EC2");
                    export("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds);
                    export("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4");
                    unset.push("AWS_EC2_METADATA_DISABLED");
                }
                None => {
                    export("AWS_EXECUTION_ENV", "AWS_ECS_FARGATE");
                    export("AWS_EC2_METADATA_DISABLED", "true");
                    unset.push("AWS_EC2_METADATA_SERVICE_ENDPOINT");
                }
            }
            // The revision started decides (a new one may have added a task role).
            match (&start.credentials_path, &start.auth_token) {
                (Some(p), Some(tok)) => {
                    export(
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                        &format!("{}{p}", t.agent),
                    );
                    export("AWS_CONTAINER_AUTHORIZATION_TOKEN", tok);
                }
                // No task role: no credentials variable at all, as in a real task.
                _ => unset.extend([
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                ]),
            }
            // A container has no ~/.aws: keep the developer's files out of it.
            export("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            export("AWS_CONFIG_FILE", "/dev/null");
            for (k, v) in &start.secrets {
                export(k, v);
            }
            (
                format!("ECS task {name}"),
                data.join("tasks").join(name).join("gcloud"),
            )
        }
        AwsTarget::User(name) => {
            let found: Vec<(&String, &keyway_cloud::server::AwsUserEndpoint)> = ep
                .aws_users
                .iter()
                .filter(|(k, _)| *k == name || k.rsplit_once('/').is_some_and(|(_, n)| n == name))
                .collect();
            let [(key, u)] = found.as_slice() else {
                bail!(
                    "the local cloud in {} has no single AWS user '{name}' ({}); name it as ACCOUNT/NAME",
                    data.display(),
                    it_has(ep.aws_users.keys(), "AWS users")
                );
            };
            export("AWS_SHARED_CREDENTIALS_FILE", &u.credentials_file);
            export("AWS_CONFIG_FILE", "/dev/null");
            export("AWS_REGION", &u.region);
            export("AWS_DEFAULT_REGION", &u.region);
            // Off EC2/ECS: nothing should probe for instance or container credentials.
            export("AWS_EC2_METADATA_DISABLED", "true");
            unset.extend([
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            ]);
            (
                format!("AWS IAM user {key}"),
                data.join("aws")
                    .join("users")
                    .join(key.as_str())
                    .join("gcloud"),
            )
        }
        AwsTarget::Ec2(name) => {
            let Some(i) = ep.ec2.get(name) else {
                bail!(
                    "the local cloud in {} has no EC2 instance '{name}' ({})",
                    data.display(),
                    it_has(ep.ec2.keys(), "EC2 instances")
                )
            };
            export("AWS_EC2_METADATA_SERVICE_ENDPOINT", &i.imds);
            export("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE", "IPv4");
            export("AWS_SHARED_CREDENTIALS_FILE", "/dev/null");
            export("AWS_CONFIG_FILE", "/dev/null");
            unset.extend([
                "AWS_EC2_METADATA_DISABLED",
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                "AWS_CONTAINER_AUTHORIZATION_TOKEN",
                "AWS_REGION",
                "AWS_DEFAULT_REGION",
            ]);
            (
                format!("EC2 instance {name} ({})", i.instance_id),
                data.join("ec2").join(name).join("gcloud"),
            )
        }
    };
    aws_endpoints(&mut export, &ep.aws);
    // Google, reached from AWS compute: no metadata server, the local Google APIs.
    keyway_cloud::datadir::private_dir(&config_dir)
        .with_context(|| format!("creating {}", config_dir.display()))?;
    export(
        "CLOUDSDK_CONFIG",
        &absolute(&config_dir)?.display().to_string(),
    );
    export("NO_GCE_CHECK", "True");
    export("CLOUDSDK_CORE_CHECK_GCE_METADATA", "false");
    gcloud_settings(&mut export, g);
    crate::output::out!(
        "# keyway local cloud ({}), pid {}, {header}\n{out}unset {}\n",
        data.display(),
        ep.pid,
        unset.join(" ")
    )?;
    Ok(ExitCode::SUCCESS)
}

/// `projects/P/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`
/// (optionally after `//iam.googleapis.com/`) → (P, POOL, PROVIDER).
fn parse_provider_name(name: &str) -> anyhow::Result<(&str, &str, &str)> {
    let rest = name.strip_prefix("//iam.googleapis.com/").unwrap_or(name);
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        [
            "projects",
            p,
            "locations",
            "global",
            "workloadIdentityPools",
            pool,
            "providers",
            provider,
        ] if !p.is_empty() && !pool.is_empty() && !provider.is_empty() => Ok((p, pool, provider)),
        _ => bail!(
            "'{name}' is not a workload identity pool provider: expected projects/PROJECT_NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER"
        ),
    }
}

/// `k=v,k2=v2` → headers.
fn parse_headers(s: &str) -> anyhow::Result<std::collections::BTreeMap<String, String>> {
    let mut out = std::collections::BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((k, v)) = pair.split_once('=') else {
            bail!(
                "--credential-source-headers: '{}' is not KEY=VALUE",
                pair.split_once(':').map(|(k, _)| k).unwrap_or(pair).trim()
            );
        };
        let k = k.trim();
        if k.is_empty() {
            bail!("--credential-source-headers: a header without a name");
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn json_field(a: &CredConfigArgs) -> anyhow::Result<Option<String>> {
    match (a.credential_source_type, &a.credential_source_field_name) {
        (Some(SourceType::Json), None) => bail!(
            "--credential-source-type json needs --credential-source-field-name (the JSON field that holds the token)"
        ),
        (Some(SourceType::Text), Some(_)) => {
            bail!("--credential-source-field-name applies to --credential-source-type json only")
        }
        (_, f) => Ok(f.clone()),
    }
}

pub fn cred_config(a: CredConfigArgs, env: &Env) -> anyhow::Result<ExitCode> {
    let (project, pool, provider) = parse_provider_name(&a.provider)?;
    let source = if a.aws {
        if a.credential_source_type.is_some() || a.credential_source_field_name.is_some() {
            bail!(
                "--credential-source-type and --credential-source-field-name apply to a file or URL source, not --aws"
            );
        }
        // As gcloud writes it: AWS's own metadata addresses. keyway and the official
        // libraries read the environment first (and keyway the ECS endpoint).
        CredSource::Aws {
            imds: None,
            imdsv2: a.enable_imdsv2,
        }
    } else if let Some(path) = &a.credential_source_file {
        CredSource::File {
            path: path.clone(),
            json_field: json_field(&a)?,
        }
    } else if let Some(url) = &a.credential_source_url {
        let headers = match &a.credential_source_headers {
            Some(h) => parse_headers(h)?,
            None => Default::default(),
        };
        CredSource::Url {
            url: url.clone(),
            headers,
            json_field: json_field(&a)?,
        }
    } else {
        bail!(
            "say where the subject token comes from: --aws, --credential-source-file PATH or --credential-source-url URL"
        );
    };
    let data = a.data.dir(env);
    let ep = Endpoints::read(&data).map_err(anyhow::Error::msg)?;
    if !data.join("cloud.db").exists() {
        bail!("{} holds no local cloud (no cloud.db)", data.display());
    }
    let key_file = crate::cli::key_file(a.key_file, env).unwrap_or_else(|| data.join("master.key"));
    // The running cloud commits every write before answering, so the store on
    // disk is the truth; pools and providers are world declarations anyway.
    let (cloud, _) = Cloud::open(&data, &key_file, None, Arc::new(SystemClock))
        .with_context(|| format!("reading the local cloud in {}", data.display()))?;
    let mut cfg = cloud
        .cred_config(
            &ep.google,
            project,
            pool,
            provider,
            a.service_account.as_deref(),
            &source,
        )
        .map_err(|e| anyhow::anyhow!("{e} (the local cloud in {})", data.display()))?;
    if let Some(n) = a.service_account_token_lifetime_seconds {
        cfg["service_account_impersonation"] = serde_json::json!({ "token_lifetime_seconds": n });
    }
    let mut text = serde_json::to_string_pretty(&cfg)?;
    text.push('\n');
    match &a.output_file {
        None => crate::output::out!("{text}")?,
        Some(path) => {
            write_private(path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            crate::output::errln!(
                "Created credential configuration file [{}].",
                path.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` with mode 0600 (also when the file existed).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names() {
        let n =
            "projects/111/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider";
        assert_eq!(
            parse_provider_name(n).unwrap(),
            ("111", "bq-pool", "aws-provider")
        );
        assert_eq!(
            parse_provider_name(&format!("//iam.googleapis.com/{n}")).unwrap(),
            ("111", "bq-pool", "aws-provider")
        );
        for bad in [
            "bq-pool",
            "projects/1/locations/us/workloadIdentityPools/p/providers/x",
            "projects/1/locations/global/workloadIdentityPools/p",
            "projects//locations/global/workloadIdentityPools/p/providers/x",
        ] {
            let e = parse_provider_name(bad).unwrap_err().to_string();
            assert!(e.contains("expected projects/PROJECT_NUMBER"), "{e}");
        }
    }

    #[test]
    fn headers() {
        let h = parse_headers("Metadata=True, X-A=b=c").unwrap();
        assert_eq!(h.get("Metadata").map(String::as_str), Some("True"));
        assert_eq!(h.get("X-A").map(String::as_str), Some("b=c"));
        // A malformed pair is named by its key, never echoing a value.
        let e = parse_headers("Authorization: Bearer abc")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'Authorization'") && !e.contains("abc"), "{e}");
    }
}
