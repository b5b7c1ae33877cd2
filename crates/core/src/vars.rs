//! Every environment variable keyway reads, in one place, with what it means.
//! Names follow the clouds' own conventions wherever one exists, so a variable a
//! user already sets for gcloud or an SDK means the same to keyway.

/// Path of a credentials file (any type Google defines): the first ADC source.
pub const GOOGLE_APPLICATION_CREDENTIALS: &str = "GOOGLE_APPLICATION_CREDENTIALS";
/// gcloud's configuration directory; holds application_default_credentials.json.
pub const CLOUDSDK_CONFIG: &str = "CLOUDSDK_CONFIG";
/// host[:port] of the GCE metadata server (skips detection when set).
pub const GCE_METADATA_HOST: &str = "GCE_METADATA_HOST";
/// Older name of GCE_METADATA_HOST.
pub const GCE_METADATA_ROOT: &str = "GCE_METADATA_ROOT";
/// ip[:port] of the metadata server used for the detection probe.
pub const GCE_METADATA_IP: &str = "GCE_METADATA_IP";
/// When true, never probe for a metadata server.
pub const NO_GCE_CHECK: &str = "NO_GCE_CHECK";
/// Default project.
pub const GOOGLE_CLOUD_PROJECT: &str = "GOOGLE_CLOUD_PROJECT";
pub const GCLOUD_PROJECT: &str = "GCLOUD_PROJECT";
pub const CLOUDSDK_CORE_PROJECT: &str = "CLOUDSDK_CORE_PROJECT";
/// gcloud's active account (`keyway doctor` asks what it may do beside the
/// workload's own identity).
pub const CLOUDSDK_CORE_ACCOUNT: &str = "CLOUDSDK_CORE_ACCOUNT";
/// A file holding an access token gcloud uses instead of its stored
/// credentials (read by `keyway doctor`, with CLOUDSDK_CORE_ACCOUNT).
pub const CLOUDSDK_AUTH_ACCESS_TOKEN_FILE: &str = "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE";
/// Base URL of Secret Manager (gcloud's override convention, with a trailing slash).
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER: &str =
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER";
/// Base URL of IAM v1 (workload identity pools; `keyway doctor` reads a
/// provider's attribute condition there).
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM";
/// Base URL of IAM Credentials.
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS: &str =
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS";
/// Base URL of Google STS.
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_STS: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_STS";
/// Base URL of the OAuth2 token endpoint host (used when a credentials file has no token_uri).
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2";
/// `1` allows `external_account` credentials to run their `executable` subject-token source
/// (Google's opt-in; without it such credentials are refused).
pub const GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES: &str =
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";
/// The command search path the child's program is looked up on.
pub const PATH: &str = "PATH";
/// HOME, for ~/.config/gcloud.
pub const HOME: &str = "HOME";
/// Runtime directory preferred for tmpfs secret files.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// The temporary directory, where neither XDG_RUNTIME_DIR nor /dev/shm is there.
pub const TMPDIR: &str = "TMPDIR";
/// keyway's log filter (tracing env-filter syntax).
pub const KEYWAY_LOG: &str = "KEYWAY_LOG";
/// The local cloud's data directory.
pub const KEYWAY_CLOUD_DATA: &str = "KEYWAY_CLOUD_DATA";
/// The local cloud's master key file (default: DATA/master.key).
pub const KEYWAY_CLOUD_KEY_FILE: &str = "KEYWAY_CLOUD_KEY_FILE";

// The AWS credential chain, with the SDKs' meanings (in the order aws-config reads them).
/// Long-term or session access key id.
pub const AWS_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Its secret key.
pub const AWS_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// The session token that goes with temporary keys.
pub const AWS_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// The profile of the shared files to use.
pub const AWS_PROFILE: &str = "AWS_PROFILE";
/// The older name of AWS_PROFILE (read when it is unset).
pub const AWS_DEFAULT_PROFILE: &str = "AWS_DEFAULT_PROFILE";
/// The shared credentials file (default ~/.aws/credentials).
pub const AWS_SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// The shared config file (default ~/.aws/config).
pub const AWS_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// The region.
pub const AWS_REGION: &str = "AWS_REGION";
/// The older name of AWS_REGION (read when it is unset).
pub const AWS_DEFAULT_REGION: &str = "AWS_DEFAULT_REGION";
/// The ECS container credentials path, relative to 169.254.170.2.
pub const AWS_CONTAINER_CREDENTIALS_RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// A full container credentials URL (loopback, or ECS/EKS link-local addresses).
pub const AWS_CONTAINER_CREDENTIALS_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
/// The Authorization header value sent to the full URI.
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
/// A file holding that value (read at each refresh; wins over the variable).
pub const AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// `true`: never ask EC2's instance metadata service.
pub const AWS_EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";
/// The instance metadata service's address (default http://169.254.169.254).
pub const AWS_EC2_METADATA_SERVICE_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// Set by ECS in every task (`AWS_ECS_FARGATE`, `AWS_ECS_EC2`): keyway runs in an ECS task.
pub const AWS_EXECUTION_ENV: &str = "AWS_EXECUTION_ENV";
/// Set by the ECS agent in every task's containers: the task metadata endpoint.
pub const ECS_CONTAINER_METADATA_URI_V4: &str = "ECS_CONTAINER_METADATA_URI_V4";

// AWS web identity (AssumeRoleWithWebIdentity), with the SDKs' meanings.
/// A file holding an OpenID Connect ID token (re-read at each refresh).
pub const AWS_WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
/// The role AssumeRoleWithWebIdentity assumes.
pub const AWS_ROLE_ARN: &str = "AWS_ROLE_ARN";
/// The role session's name (default: `keyway-UNIXTIME`).
pub const AWS_ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
/// Base URL of every AWS service (overridden per service below).
pub const AWS_ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
/// Base URL of STS.
pub const AWS_ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
/// Base URL of Secrets Manager.
pub const AWS_ENDPOINT_URL_SECRETSMANAGER: &str = "AWS_ENDPOINT_URL_SECRETSMANAGER";
/// `google`: the web identity token is a Google ID token of keyway's Google
/// credentials (Google → AWS federation without a token file). Needs AWS_ROLE_ARN.
pub const KEYWAY_AWS_WEB_IDENTITY: &str = "KEYWAY_AWS_WEB_IDENTITY";
/// The audience of that Google ID token (default `sts.amazonaws.com`).
pub const KEYWAY_AWS_WEB_IDENTITY_AUDIENCE: &str = "KEYWAY_AWS_WEB_IDENTITY_AUDIENCE";

// Proxies, with curl's meanings (upper case first, then lower case).
/// Proxy for http:// URLs.
pub const HTTP_PROXY: &str = "HTTP_PROXY";
/// Proxy for https:// URLs.
pub const HTTPS_PROXY: &str = "HTTPS_PROXY";
/// Proxy for both, when the specific one is not set.
pub const ALL_PROXY: &str = "ALL_PROXY";
/// Hosts, domains and CIDR blocks reached directly. keyway adds loopback,
/// link-local (169.254.0.0/16, fe80::/10: EC2/ECS/GCE metadata and credential
/// endpoints) and metadata.google.internal to it: credentials never go through a proxy.
pub const NO_PROXY: &str = "NO_PROXY";

// Output.
/// Set (to anything but the empty string): no ANSI colour on stderr (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// The terminal type; `dumb` means no colour.
pub const TERM: &str = "TERM";
