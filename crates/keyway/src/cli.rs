//! The command line, as clap sees it. Help text here is the user's manual: keep it true.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "keyway", version, about = "Secrets and cloud credentials for any workload, on any cloud.", long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace). KEYWAY_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command with secrets resolved into its environment or into private files.
    ///
    /// Every reference (from --env, and inherited variables whose value starts with
    /// sm://, gcp:secretmanager:, aws-sm:// or arn:aws:secretsmanager:) is resolved concurrently before the
    /// command starts. If any fails, the command never starts: keyway names each
    /// failed reference and why, and exits 125 (as for any failure of keyway's own
    /// before the command starts, a usage error of `keyway exec` included). Values delivered as files
    /// (?destination=tempfile or ?filename=NAME) live in a private 0700 directory
    /// on tmpfs, each file 0400, and are removed when the command exits, however
    /// it exits. Signals are forwarded; keyway exits with the command's status
    /// (128+N if it died of signal N), 127 if it was not found, 126 if it could not run.
    ///
    /// If keyway itself is killed without a chance to clean up (SIGKILL, the OOM
    /// killer), the kernel kills the command too (the command's own child
    /// processes are not signalled), and the next `keyway exec` of the same user
    /// removes the secret files left behind; see --keep-running-if-keyway-dies.
    ///
    /// Google Secret Manager: sm://PROJECT/SECRET[#VERSION],
    /// gcp:secretmanager:projects/P/secrets/S[/versions/V], projects/P/secrets/S[/versions/V].
    /// AWS Secrets Manager: the ECS valueFrom ARN
    /// arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id],
    /// or aws-sm://NAME-or-ARN[#STAGE-or-VERSION-ID].
    /// Options: ?version=V (Google), ?version-stage=S / ?version-id=ID (AWS), ?field=a.b (a JSON
    /// field), ?destination=tempfile, ?filename=NAME.
    ///
    /// With --watch[=INTERVAL] the references are resolved again while the command
    /// runs, and a changed value is delivered: a file replaced atomically at the
    /// same path (then SIGHUP, or --on-change=signal:SIG), or the command restarted
    /// with the new environment (--on-change=restart; automatic for a changed
    /// environment variable). A failed re-resolve changes nothing.
    ///
    /// AWS credentials come from the SDKs' chain: AWS_ACCESS_KEY_ID, the shared files (AWS_PROFILE),
    /// web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN), ECS, then IMDSv2. From Google to AWS
    /// without a token file: KEYWAY_AWS_WEB_IDENTITY=google and AWS_ROLE_ARN exchange a Google ID token
    /// of keyway's Google credentials (audience KEYWAY_AWS_WEB_IDENTITY_AUDIENCE, default
    /// sts.amazonaws.com) with STS AssumeRoleWithWebIdentity.
    Exec(ExecArgs),
    /// Print a secret's value on stdout, byte for byte.
    Get(GetArgs),
    /// Show the identity keyway would use, where it came from, its scopes and expiry.
    Whoami(WhoamiArgs),
    /// Check what `exec` would do, step by step, and explain every failure.
    ///
    /// For Google and AWS (or, given references, for the clouds they name):
    /// which credentials source answers and what else was tried, the token,
    /// who it is (a VM's service account and the VM's access scopes, a user, a
    /// federated workload), and each reference's value. For every failure: the
    /// cause in one sentence and the fix, as the gcloud or aws command to run
    /// with the real names filled in, or the file and line to change. A denial is
    /// checked with testIamPermissions, and against gcloud's user credentials
    /// when this machine has them (your user holding the role while the VM's
    /// service account does not).
    ///
    /// Exit status: 0 when every step checks out (warnings included), 1 when a
    /// step failed, 2 for a usage error (a reference that does not parse
    /// included). `--output json` prints the report in the schema
    /// keyway.doctor/v1 (see the README).
    Doctor(DoctorArgs),
    /// Print a credential on stdout for scripts and other tools: a Google access
    /// token (default), a Google ID token (--audience), or AWS credentials (--aws).
    ///
    /// The credential comes from the same sources as every other command (Google
    /// Application Default Credentials; the AWS credential chain), so
    /// `curl -H "Authorization: Bearer $(keyway token)" …` works wherever keyway does.
    /// With --aws the output is the JSON an AWS `credential_process` prints
    /// (Version, AccessKeyId, SecretAccessKey, SessionToken, Expiration), so a
    /// profile with `credential_process = keyway token --aws` hands keyway's
    /// credentials to any AWS SDK or the AWS CLI.
    Token(TokenArgs),
    /// Serve keyway's credentials on loopback at the endpoints SDKs already know,
    /// for the containers of a task or pod (a sidecar), until SIGINT or SIGTERM.
    ///
    /// The GCE metadata API (gce) makes Google's libraries in any language use
    /// keyway's Google credentials (Workload Identity Federation included) as if
    /// on Compute Engine; the ECS credentials API (ecs) makes every AWS SDK use
    /// keyway's AWS credentials (AssumeRoleWithWebIdentity from Google included);
    /// the secrets API (secrets) answers as the AWS Secrets Manager Agent does
    /// (GET /secretsmanager/get?secretId=…, /v1/ID, /ping, with the token in
    /// X-Aws-Parameters-Secrets-Token), and GET /keyway/get?secretId=REFERENCE
    /// answers the same shape for any keyway reference (Google's included).
    /// Tokens and credentials are refreshed ahead of expiry in the background.
    /// When ready, the variables a workload needs are printed on stdout as shell
    /// lines (`unset …`, `export …`; also written to --env-file): GCE_METADATA_HOST
    /// and GCE_METADATA_IP, AWS_CONTAINER_CREDENTIALS_FULL_URI and
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, KEYWAY_SECRETS_URL and
    /// KEYWAY_SECRETS_TOKEN_FILE, and the variables that would make an SDK pick
    /// another source first, to unset. The metadata API requires
    /// `Metadata-Flavor: Google`; the others the token in --token-file.
    Serve(ServeArgs),
    /// The local, offline cloud: Google and AWS APIs with real IAM decisions on an embedded store.
    #[command(subcommand)]
    Cloud(CloudCommand),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The APIs to serve: gce, ecs, secrets (comma-separated), or auto (each
    /// one whose credentials keyway finds).
    #[arg(long, value_name = "APIS", default_value = "auto")]
    pub apis: String,
    /// How long the secrets API serves a value from memory before fetching it
    /// again (0 to 3600; 0 = every request fetches), as the agent's ttl_seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub secrets_ttl: u64,
    /// Where to listen; must be loopback. Port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    pub listen: keyway_core::LoopbackAddr,
    /// The file holding the token callers of the ECS and secrets APIs present: read if it
    /// exists, else created (mode 0440) with a fresh random token. Default: a
    /// private file created for this run and removed at exit.
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Also write the variables to this file (mode 0644), for `. FILE` in a
    /// workload's container; removed at exit.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    /// The project id the metadata API reports (default: GOOGLE_CLOUD_PROJECT,
    /// else what the credentials say, e.g. the service account's project).
    #[arg(long, value_name = "ID")]
    pub project: Option<String>,
    /// The project number the metadata API reports (default: the Workload
    /// Identity Federation audience's, if any).
    #[arg(long, value_name = "NUMBER")]
    pub project_number: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Set NAME to the value of REF (repeatable).
    #[arg(long = "env", short = 'e', value_name = "NAME=REF")]
    pub env: Vec<String>,
    /// Do not resolve references found in inherited environment variables.
    #[arg(long)]
    pub no_inherited: bool,
    /// How many references are fetched at once.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// If keyway is killed (SIGKILL, the OOM killer), let the command run on
    /// instead of dying with it. Its secret files then stay until it exits (it
    /// holds their directory's lock); nothing removes them before.
    #[arg(long)]
    pub keep_running_if_keyway_dies: bool,
    /// Give up on resolving after this many seconds (retries included).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
    /// Serve keyway's credentials to the command on loopback for as long as it
    /// runs (see `keyway serve`): APIS is gce, ecs, secrets (comma-separated) or
    /// auto (the default: each one whose credentials keyway finds). The command
    /// gets GCE_METADATA_HOST/GCE_METADATA_IP, AWS_CONTAINER_CREDENTIALS_FULL_URI
    /// with AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE, and KEYWAY_SECRETS_URL with
    /// KEYWAY_SECRETS_TOKEN_FILE (the token files private, 0400), and loses
    /// the variables that would make an SDK pick another source first
    /// (GOOGLE_APPLICATION_CREDENTIALS, AWS_ACCESS_KEY_ID, AWS_PROFILE, …).
    #[arg(long, value_name = "APIS", num_args = 0..=1, require_equals = true, default_missing_value = "auto")]
    pub broker: Option<String>,
    /// Where the broker listens (loopback; default a free port on 127.0.0.1).
    #[arg(long, value_name = "ADDR", requires = "broker")]
    pub broker_listen: Option<keyway_core::LoopbackAddr>,
    /// Keep the command's secrets current while it runs: every INTERVAL
    /// (default 60s; 30s, 5m, 1h30m or plain seconds; 1s to 24h) resolve every
    /// reference again and deliver what changed, as --on-change says. A change
    /// is a new value (a new version with the same value delivers nothing);
    /// each changed reference is logged (-v) by name and version, never its
    /// value. If a reference cannot be resolved (a denial, a disabled version,
    /// no network), nothing is changed: the command runs on with the values it
    /// has, keyway warns (once while it lasts) naming the reference and why, and
    /// tries again at the next interval.
    #[arg(long, value_name = "INTERVAL", num_args = 0..=1, require_equals = true,
          default_missing_value = "60s", value_parser = parse_interval)]
    pub watch: Option<Duration>,
    /// With --watch, what a changed secret does to the running command:
    /// `auto` (the default): a changed file is replaced and the command gets
    /// SIGHUP (a program that does not handle SIGHUP dies of it: use restart);
    /// a changed environment variable restarts the command, since the
    /// environment of a running process cannot be changed. `signal:SIG`: replace
    /// changed files, then send SIG (a name, HUP, SIGUSR1, RTMIN+2, or a number);
    /// changed environment variables then cannot reach the command (keyway warns
    /// at start and at each such change). `restart`: replace changed files, stop the
    /// command (SIGTERM, then SIGKILL after --stop-timeout) and start it again
    /// with every value current. Files are replaced atomically (a new 0400 file
    /// renamed over the old: same path, never a partial read). keyway exits with
    /// the status of the last command started.
    #[arg(long, value_name = "ACTION", default_value = "auto", requires = "watch",
          value_parser = parse_on_change)]
    pub on_change: OnChange,
    /// With --watch: how long a restart waits for the command to exit after
    /// SIGTERM before sending SIGKILL (e.g. 10s, 1m; 0s kills at once).
    #[arg(long, value_name = "DURATION", default_value = "10s", requires = "watch",
          value_parser = parse_stop_timeout)]
    pub stop_timeout: Duration,
    /// The command and its arguments.
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "CMD"
    )]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    /// The secret reference (see `keyway exec --help` for the forms).
    pub reference: String,
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// OAuth scopes for the access token, comma-separated; NAME is short for
    /// https://www.googleapis.com/auth/NAME. Default: cloud-platform.
    #[arg(long, value_name = "SCOPES", conflicts_with_all = ["audience", "aws"])]
    pub scopes: Vec<String>,
    /// Print a Google-signed ID token for this audience instead of an access token.
    #[arg(long, value_name = "AUDIENCE", conflicts_with = "aws")]
    pub audience: Option<String>,
    /// Print AWS credentials in the credential_process JSON shape.
    #[arg(long)]
    pub aws: bool,
    /// Output format for Google tokens: the bare token (text) or a JSON object
    /// with its expiry, the scopes it carries (as its issuer says; on a VM, the
    /// instance's access scopes), the scopes requested, and its source. keyway
    /// warns on stderr when the token lacks a requested scope.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct WhoamiArgs {
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Secret references to check (the forms `keyway exec --help` lists).
    #[arg(value_name = "REF")]
    pub references: Vec<String>,
    /// Output format.
    #[arg(long, short, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Seconds each step may take.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Start the local cloud and serve until SIGINT or SIGTERM.
    ///
    /// Seeds an empty data directory from the world file; afterwards the store is
    /// the truth (changes made through the APIs survive restarts) and the world
    /// file is not re-read unless --reset is given. Every server binds loopback on
    /// an ephemeral port; when ready, one JSON line describing them is printed on
    /// stdout and written to DATA/endpoints.json. One cloud runs per data
    /// directory: a second `cloud up` on it (with or without --reset) is refused.
    Up(UpArgs),
    /// Print shell exports that make a process behave as if it ran on an
    /// instance of the local cloud, or as a logged-in user. Use: eval "$(keyway cloud env ...)"
    Env(EnvArgs),
    /// Write the Workload Identity Federation credential configuration that
    /// `gcloud iam workload-identity-pools create-cred-config` writes, for a pool
    /// and provider of the running local cloud.
    ///
    /// The file is an `external_account` configuration: no key, only where to get a
    /// subject token (the workload's AWS credentials with --aws; an OIDC token in a
    /// file or at a URL otherwise), the STS token URL and, with --service-account,
    /// the IAM Credentials URL of the account to impersonate. Both URLs point at the
    /// running local cloud (DATA/endpoints.json), the origin that `keyway cloud env`
    /// exports as CLOUDSDK_API_ENDPOINT_OVERRIDES_STS / _IAMCREDENTIALS; with those
    /// set, keyway accepts them. Point GOOGLE_APPLICATION_CREDENTIALS at the file.
    ///
    /// With --aws the AWS credentials come, in keyway, from the environment, then the
    /// ECS container credentials endpoint (a Fargate task's task role), then IMDSv2;
    /// the official Google libraries read only the environment and IMDS.
    ///
    /// Example, inside an ECS task: keyway cloud cred-config
    /// projects/111111111111/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider
    /// --aws --service-account sa@proj.iam.gserviceaccount.com --output-file cred.json
    CredConfig(CredConfigArgs),
}

#[derive(Debug, Args)]
pub struct CredConfigArgs {
    /// The provider's resource name:
    /// projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER
    /// (the project id is accepted in place of its number; a leading
    /// //iam.googleapis.com/ is allowed).
    #[arg(value_name = "PROVIDER")]
    pub provider: String,
    /// The service account to impersonate (its email). Without it the federated
    /// token is used directly: grant roles to the pool's principal:// or
    /// principalSet:// members instead.
    #[arg(long, value_name = "EMAIL")]
    pub service_account: Option<String>,
    /// Lifetime of the impersonated account's access tokens (600 to 43200; the
    /// local cloud, like Google without the org policy, serves up to 3600).
    #[arg(long, value_name = "SECONDS", requires = "service_account", value_parser = clap::value_parser!(u32).range(600..=43200))]
    pub service_account_token_lifetime_seconds: Option<u32>,
    /// The subject token is a signed AWS GetCallerIdentity request (an AWS provider).
    #[arg(long, conflicts_with_all = ["credential_source_file", "credential_source_url"], required_unless_present_any = ["credential_source_file", "credential_source_url"])]
    pub aws: bool,
    /// With --aws: write imdsv2_session_token_url (IMDSv2 session tokens).
    #[arg(long, requires = "aws")]
    pub enable_imdsv2: bool,
    /// An OIDC provider's subject token is read from this file.
    #[arg(long, value_name = "PATH", conflicts_with = "credential_source_url")]
    pub credential_source_file: Option<String>,
    /// An OIDC provider's subject token is fetched from this URL.
    #[arg(long, value_name = "URL")]
    pub credential_source_url: Option<String>,
    /// Headers sent to --credential-source-url, as KEY=VALUE,KEY=VALUE.
    #[arg(long, value_name = "KEY=VALUE,...", requires = "credential_source_url")]
    pub credential_source_headers: Option<String>,
    /// How the file or URL holds the token: the whole text, or a JSON object
    /// (then --credential-source-field-name names the field).
    #[arg(long, value_enum, value_name = "TYPE")]
    pub credential_source_type: Option<SourceType>,
    /// The JSON field holding the token (with --credential-source-type json).
    #[arg(long, value_name = "FIELD")]
    pub credential_source_field_name: Option<String>,
    /// Write the configuration to this file (mode 0600) instead of stdout.
    #[arg(long, value_name = "PATH")]
    pub output_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// The master key the local cloud was started with (as for `keyway cloud up`).
    /// Default: $KEYWAY_CLOUD_KEY_FILE, else DATA/master.key.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SourceType {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The local cloud's data directory. Default: $KEYWAY_CLOUD_DATA, else .keyway-cloud.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
}

impl DataArgs {
    /// `--data`, else `KEYWAY_CLOUD_DATA` (read from the environment main captured), else `.keyway-cloud`.
    pub fn dir(&self, env: &keyway_core::Env) -> PathBuf {
        self.data
            .clone()
            .or_else(|| {
                env.non_empty(keyway_core::vars::KEYWAY_CLOUD_DATA)
                    .map(PathBuf::from)
            })
            .unwrap_or_else(|| PathBuf::from(".keyway-cloud"))
    }
}

/// `--key-file`, else `KEYWAY_CLOUD_KEY_FILE`; `None` means DATA/master.key.
pub fn key_file(flag: Option<PathBuf>, env: &keyway_core::Env) -> Option<PathBuf> {
    flag.or_else(|| {
        env.non_empty(keyway_core::vars::KEYWAY_CLOUD_KEY_FILE)
            .map(PathBuf::from)
    })
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The world file (TOML) that seeds an empty store.
    #[arg(long)]
    pub world: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// The master key that encrypts payloads at rest (created if the store is new).
    /// Default: $KEYWAY_CLOUD_KEY_FILE, else DATA/master.key. Keep it apart from the data
    /// directory to separate key and data.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Delete the store (and its master key, if it is in DATA) first and seed again from --world.
    #[arg(long)]
    pub reset: bool,
    /// Address of the Google API server; must be loopback. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Run the cloud's clock this far from this machine's (e.g. 1h, -20m, 90):
    /// the clouds as a machine with a clock that far off sees them (AWS refuses
    /// SigV4 signatures more than 15 minutes off). At most a year either way.
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true, value_parser = parse_offset)]
    pub clock_offset: Option<jiff::SignedDuration>,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Act as a process on this VM (a GCE instance or an EC2 instance): its
    /// metadata server answers for it.
    #[arg(long, conflicts_with = "user", required_unless_present_any = ["user", "task", "aws_user"])]
    pub instance: Option<String>,
    /// Act as a container of this ECS task: its task role's credentials endpoint
    /// and its `secrets`, resolved now with the execution role (as ECS does at start).
    #[arg(long, conflicts_with_all = ["user", "instance"])]
    pub task: Option<String>,
    /// Act as this AWS IAM user (NAME or ACCOUNT/NAME) on a developer machine:
    /// its access key in a shared credentials file, the region, every AWS
    /// endpoint (IAM's included) on the local cloud, no IMDS, no pager; the aws
    /// CLI and the SDKs run as this user unchanged.
    #[arg(long, conflicts_with_all = ["user", "instance", "task"])]
    pub aws_user: Option<String>,
    /// Act as this user after `gcloud auth login` and `gcloud auth
    /// application-default login`: the ADC file the client libraries read, and
    /// gcloud itself logged in (a fresh access token in a private file, the
    /// account, the project, every API endpoint override, no prompts, no update
    /// checks). The token lives an hour; run this again for a new one.
    #[arg(long)]
    pub user: Option<String>,
}

/// What `exec --watch` does to the running command when a secret changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    /// Files: replace and SIGHUP; any environment variable: restart.
    Auto,
    /// Replace files, then send this signal (a raw number).
    Signal(i32),
    /// Replace files, stop the command and start it again.
    Restart,
}

/// The shortest and longest `--watch` intervals.
pub const WATCH_MIN: Duration = Duration::from_secs(1);
pub const WATCH_MAX: Duration = Duration::from_secs(24 * 3600);

/// A duration as people write one: plain seconds (`30`), or jiff's friendly
/// and ISO 8601 forms (`30s`, `5m`, `1h30m`, `1.5s`, `PT1M`).
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty; expected a duration such as 30s, 5m or 90".into());
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| format!("{t} seconds is out of range"));
    }
    let d: jiff::SignedDuration = t
        .parse()
        .map_err(|_| "not a duration; expected e.g. 30s, 5m, 1h30m or plain seconds".to_owned())?;
    Duration::try_from(d).map_err(|_| "a duration cannot be negative".to_owned())
}

/// A signed duration (`1h`, `-20m`, `-90`: plain seconds), within a year.
fn parse_offset(s: &str) -> Result<jiff::SignedDuration, String> {
    let t = s.trim();
    let (negative, magnitude) = match t.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let d = parse_duration(magnitude)?;
    if d > Duration::from_secs(366 * 24 * 3600) {
        return Err("too far: at most a year either way".into());
    }
    let d = jiff::SignedDuration::try_from(d).map_err(|_| "out of range".to_owned())?;
    Ok(if negative { -d } else { d })
}

pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < WATCH_MIN {
        return Err(format!(
            "too short: at least {}s (each interval resolves every reference again)",
            WATCH_MIN.as_secs()
        ));
    }
    if d > WATCH_MAX {
        return Err(format!("too long: at most {}h", WATCH_MAX.as_secs() / 3600));
    }
    Ok(d)
}

fn parse_stop_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > Duration::from_secs(3600) {
        return Err("too long: at most 1h".into());
    }
    Ok(d)
}

fn parse_on_change(s: &str) -> Result<OnChange, String> {
    match s {
        "auto" => Ok(OnChange::Auto),
        "restart" => Ok(OnChange::Restart),
        _ => match s.strip_prefix("signal:") {
            Some(sig) => parse_signal(sig).map(OnChange::Signal),
            None => Err(
                "expected auto, restart or signal:SIG (e.g. signal:HUP, signal:USR1, signal:10)"
                    .into(),
            ),
        },
    }
}

/// A signal by name (`HUP`, `SIGHUP`, `hup`, `RTMIN+2`, `SIGRTMAX-1`) or number.
pub fn parse_signal(s: &str) -> Result<i32, String> {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let bad = || {
        format!(
            "unknown signal {s:?}: use a name (HUP, USR1, TERM, RTMIN+N, ...) or a number 1-{max}"
        )
    };
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return match s.parse::<i32>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad()),
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let rt = |base: i32, rest: &str, sign: i32| -> Result<i32, String> {
        let n = if rest.is_empty() {
            0
        } else {
            rest.parse::<i32>().map_err(|_| bad())?
        };
        let n = base + sign * n;
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        }
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return match rest.strip_prefix('+') {
            Some(n) => rt(min, n, 1),
            None if rest.is_empty() => Ok(min),
            None => Err(bad()),
        };
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return match rest.strip_prefix('-') {
            Some(n) => rt(max, n, -1),
            None if rest.is_empty() => Ok(max),
            None => Err(bad()),
        };
    }
    SIGNALS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, sig)| *sig)
        .ok_or_else(bad)
}

/// `SIGHUP`, `SIGRTMIN+2`, or the number: how logs name a signal.
pub fn signal_name(n: i32) -> String {
    let (min, max) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    match SIGNALS.iter().find(|(_, s)| *s == n) {
        Some((name, _)) => format!("SIG{name}"),
        None if n == min => "SIGRTMIN".into(),
        None if n > min && n <= max => format!("SIGRTMIN+{}", n - min),
        None => n.to_string(),
    }
}

/// Linux's signal names (without `SIG`), as kill(1) knows them.
const SIGNALS: [(&str, i32); 33] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("POLL", libc::SIGPOLL),
    ("PWR", libc::SIGPWR),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_in_the_forms_people_write() {
        assert_eq!(parse_interval("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_interval("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_interval("PT2M"), Ok(Duration::from_secs(120)));
        for (bad, why) in [
            ("0", "too short"),
            ("500ms", "too short"),
            ("-5s", "negative"),
            ("25h", "too long"),
            ("99999999999999999999", "out of range"),
            ("soon", "not a duration"),
            ("", "empty"),
            ("5 parsecs", "not a duration"),
        ] {
            let e = parse_interval(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn clock_offsets_either_way() {
        let s = jiff::SignedDuration::from_secs;
        assert_eq!(parse_offset("1h"), Ok(s(3600)));
        assert_eq!(parse_offset("-20m"), Ok(s(-1200)));
        assert_eq!(parse_offset("+90"), Ok(s(90)));
        assert_eq!(parse_offset("-90"), Ok(s(-90)));
        assert!(parse_offset("9000h").unwrap_err().contains("a year"));
        assert!(parse_offset("--1h").is_err() && parse_offset("-").is_err());
    }

    #[test]
    fn on_change_and_signals() {
        assert_eq!(parse_on_change("auto"), Ok(OnChange::Auto));
        assert_eq!(parse_on_change("restart"), Ok(OnChange::Restart));
        for (text, n) in [
            ("signal:HUP", libc::SIGHUP),
            ("signal:SIGHUP", libc::SIGHUP),
            ("signal:usr1", libc::SIGUSR1),
            ("signal:SIGTERM", libc::SIGTERM),
            ("signal:10", 10),
            ("signal:RTMIN", libc::SIGRTMIN()),
            ("signal:SIGRTMIN+2", libc::SIGRTMIN() + 2),
            ("signal:RTMAX-1", libc::SIGRTMAX() - 1),
        ] {
            assert_eq!(parse_on_change(text), Ok(OnChange::Signal(n)), "{text}");
        }
        assert_eq!(signal_name(libc::SIGHUP), "SIGHUP");
        assert_eq!(signal_name(libc::SIGRTMIN() + 2), "SIGRTMIN+2");
        for bad in [
            "signal:",
            "signal:NOPE",
            "signal:0",
            "signal:65",
            "signal:-1",
            "signal:RTMIN+99",
            "signal:RTMINX",
            "hup",
            "Restart",
            "",
        ] {
            assert!(parse_on_change(bad).is_err(), "{bad}");
        }
    }
}
