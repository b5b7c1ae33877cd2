//! What `keyway exec --broker` and `keyway serve` share: choosing the APIs,
//! resolving the credentials behind each (so a broker that cannot serve fails
//! before any workload relies on it), serving them on loopback through
//! keyway-serve, and keeping them fresh.

use crate::context;
use crate::{aws, google};
use anyhow::{Context, bail};
use keyway_broker::child::ChildEnv;
use keyway_broker::ecs::{Aws, AwsError};
use keyway_broker::gce::{Google, Project};
use keyway_broker::{Broker, Token};
use keyway_core::{Clock, Env, LoopbackAddr, SystemClock};
use std::net::SocketAddr;
use std::sync::Arc;

/// One API of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    Gce,
    Ecs,
    Secrets,
}

/// The APIs asked for: every one whose credentials keyway finds (`auto`), or
/// exactly these (an API whose credentials are missing is then an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub apis: Vec<Api>,
    pub explicit: bool,
}

impl Wanted {
    pub fn parse(s: &str) -> anyhow::Result<Wanted> {
        if s == "auto" {
            return Ok(Wanted {
                apis: vec![Api::Gce, Api::Ecs, Api::Secrets],
                explicit: false,
            });
        }
        let mut apis = Vec::new();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let api = match name {
                "gce" => Api::Gce,
                "ecs" => Api::Ecs,
                "secrets" => Api::Secrets,
                other => bail!(
                    "unknown broker API '{other}': the APIs are gce (the GCE metadata API), ecs (the ECS credentials API) \
                     and secrets (the Secrets Manager Agent-compatible cache), or auto"
                ),
            };
            if !apis.contains(&api) {
                apis.push(api);
            }
        }
        if apis.is_empty() {
            bail!("no broker API named: use gce, ecs, secrets (comma-separated) or auto");
        }
        Ok(Wanted {
            apis,
            explicit: true,
        })
    }
}

/// A broker being served.
pub struct Running {
    pub addr: SocketAddr,
    pub child: ChildEnv,
    pub apis: Vec<&'static str>,
    pub server: keyway_serve::Server,
    _refreshers: Vec<tokio::task::JoinHandle<()>>,
}

/// The project the metadata API reports: the flags, else the environment's
/// GOOGLE_CLOUD_PROJECT (or gcloud's names for it); else what the credentials say.
pub fn project(env: &Env, id: Option<String>, number: Option<String>) -> Project {
    let id = id.or_else(|| {
        [
            keyway_core::vars::GOOGLE_CLOUD_PROJECT,
            keyway_core::vars::GCLOUD_PROJECT,
            keyway_core::vars::CLOUDSDK_CORE_PROJECT,
        ]
        .iter()
        .find_map(|v| env.non_empty(v).map(str::to_owned))
    });
    Project { id, number }
}

/// Resolves the credentials of each wanted API and serves them on `listen`.
pub async fn start(
    env: &Env,
    wanted: &Wanted,
    listen: LoopbackAddr,
    project: Project,
    token: Arc<Token>,
    secrets_ttl: std::time::Duration,
) -> anyhow::Result<Running> {
    let http = context::http_client(env);
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut broker = Broker::default();
    let mut region: Option<String> = None;
    if wanted.apis.contains(&Api::Gce) {
        let got = async {
            let creds = google::credentials(env, &http).await?;
            let source = creds.source().to_string();
            Google::new(creds, project.clone(), clock.clone())
                .await
                .with_context(|| format!("getting a first access token from {source}"))
        }
        .await;
        match got {
            Ok(g) => {
                tracing::info!(email = g.email(), project = ?g.project_id(), "the broker serves the GCE metadata API");
                broker.google = Some(Arc::new(g));
            }
            Err(e) if wanted.explicit => {
                return Err(e.context("the GCE metadata API needs Google credentials"));
            }
            Err(e) => {
                tracing::info!(error = %format!("{e:#}"), "not serving the GCE metadata API");
            }
        }
    }
    if wanted.apis.contains(&Api::Ecs) {
        let got = async {
            let p = aws::provider(env, &http, aws::looks_like_ec2()).await?;
            let source = p.source().to_string();
            let r = p.region().map(|(r, _)| r.to_owned());
            let a = Aws::new(p, token.clone()).await?;
            Ok::<_, AwsError>((a, r, source))
        }
        .await;
        match got {
            Ok((a, r, source)) => {
                tracing::info!(%source, "the broker serves the ECS credentials API");
                region = r;
                broker.aws = Some(Arc::new(a));
            }
            Err(e) if wanted.explicit => {
                return Err(
                    anyhow::Error::new(e).context("the ECS credentials API needs AWS credentials")
                );
            }
            Err(e) => tracing::info!(error = %e, "not serving the ECS credentials API"),
        }
    }
    if wanted.apis.contains(&Api::Secrets) {
        // Whatever credentials there are: Google's for Secret Manager, AWS's
        // (long-term keys too: this API hands out values, not credentials).
        let google_creds = match &broker.google {
            Some(g) => Some(g.credentials().clone()),
            None => google::credentials(env, &http).await.ok(),
        };
        let aws = match &broker.aws {
            Some(a) => Some(a.provider().clone()),
            None => aws::provider(env, &http, aws::looks_like_ec2()).await.ok(),
        };
        if google_creds.is_none() && aws.is_none() {
            let why = "the secrets API needs Google or AWS credentials, and keyway found neither (see `keyway whoami`)";
            if wanted.explicit {
                bail!(why);
            }
            tracing::info!("not serving the secrets API: {why}");
        } else {
            let mut fetcher = keyway_secrets::Fetcher::new(http.clone(), env, clock.clone());
            fetcher.aws = aws;
            tracing::info!(
                ttl_secs = secrets_ttl.as_secs(),
                "the broker serves the secrets API"
            );
            broker.secrets = Some(Arc::new(keyway_broker::agent::Secrets::new(
                fetcher,
                google_creds,
                token.clone(),
                secrets_ttl,
            )));
        }
    }
    let apis = broker.apis();
    if apis.is_empty() {
        bail!(
            "the broker has nothing to serve: keyway found neither Google credentials nor temporary AWS credentials (see `keyway whoami`)"
        );
    }
    let broker = Arc::new(broker);
    let refreshers = keyway_broker::refresh::spawn(&broker, clock);
    // A broker serves every process of a task or pod: more connections than a
    // cloud API front end (lowered by keyway-serve to what RLIMIT_NOFILE allows).
    let server = keyway_serve::Server::new(keyway_serve::Limits {
        max_connections: 2048,
        ..keyway_serve::Limits::default()
    });
    let addr = server
        .bind(listen, keyway_broker::router(broker.clone()))
        .await
        .with_context(|| format!("listening on {listen}"))?;
    let child = ChildEnv::new(
        addr,
        broker.google.is_some(),
        broker.aws.is_some().then_some(region.as_deref()),
        broker.secrets.is_some(),
        env,
    );
    tracing::info!(%addr, apis = %apis.join(","), "broker ready");
    Ok(Running {
        addr,
        child,
        apis,
        server,
        _refreshers: refreshers,
    })
}

/// `keyway exec --broker`: a broker for one workload, living as long as it.
pub struct ForExec {
    running: Running,
    token: Arc<Token>,
}

/// Starts the broker `keyway exec --broker[=APIS]` asks for and rewrites the
/// workload's environment for it.
pub async fn exec(
    env: &mut Env,
    apis: &str,
    listen: Option<LoopbackAddr>,
) -> anyhow::Result<ForExec> {
    let wanted = Wanted::parse(apis)?;
    let token = Arc::new(Token::random());
    let running = start(
        env,
        &wanted,
        listen.unwrap_or(LoopbackAddr::ephemeral()),
        project(env, None, None),
        token.clone(),
        keyway_broker::agent::DEFAULT_TTL,
    )
    .await?;
    running.child.apply(env);
    Ok(ForExec { running, token })
}

impl ForExec {
    /// Adds the broker's token as private files (0400 on tmpfs, removed with
    /// the workload's other files) named by AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
    /// and KEYWAY_SECRETS_TOKEN_FILE, for the APIs served.
    pub fn deliver(&self, mut plan: keyway_exec::Plan) -> keyway_exec::Plan {
        let token = || keyway_core::Secret::new(self.token.expose().as_bytes().to_vec());
        if self.running.child.aws_token_file {
            plan = plan.file(
                keyway_broker::child::AWS_TOKEN_FILE_VAR,
                "aws-container-authorization-token",
                token(),
            );
        }
        if self.running.child.secrets_token_file {
            plan = plan.file(
                keyway_broker::child::SECRETS_TOKEN_FILE_VAR,
                "keyway-secrets-token",
                token(),
            );
        }
        plan
    }

    pub async fn stop(self) {
        self.running.server.shutdown().await;
    }
}
