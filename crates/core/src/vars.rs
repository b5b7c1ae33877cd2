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
/// Base URL of Secret Manager (gcloud's override convention, with a trailing slash).
pub const CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER: &str =
    "CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER";
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
/// HOME, for ~/.config/gcloud.
pub const HOME: &str = "HOME";
/// Runtime directory preferred for tmpfs secret files.
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";
/// keyway's log filter (tracing env-filter syntax).
pub const KEYWAY_LOG: &str = "KEYWAY_LOG";
/// The local cloud's data directory.
pub const KEYWAY_CLOUD_DATA: &str = "KEYWAY_CLOUD_DATA";
/// The local cloud's master key file (default: DATA/master.key).
pub const KEYWAY_CLOUD_KEY_FILE: &str = "KEYWAY_CLOUD_KEY_FILE";

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
