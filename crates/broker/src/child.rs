//! The environment a workload gets for each API the broker serves, and the
//! variables it loses: every variable that would make an SDK pick another
//! credential source before the broker's endpoint (some libraries refuse a
//! credential file whose URLs are not Google's before they ever look at the
//! metadata server; an `AWS_PROFILE` or `AWS_ACCESS_KEY_ID` wins over the
//! container endpoint in every AWS SDK's chain).

use keyway_core::Env;
use std::net::SocketAddr;

/// Removed when the metadata API is served: sources the Google libraries try
/// before the metadata server, or settings that stop them from using it.
pub const GOOGLE_REMOVED: &[&str] = &[
    // The first ADC source (a key, an external_account configuration...).
    "GOOGLE_APPLICATION_CREDENTIALS",
    // Older name of GCE_METADATA_HOST: not read once GCE_METADATA_HOST is set,
    // removed so nothing reads a stale address.
    "GCE_METADATA_ROOT",
    // google-auth (Python): `NO_GCE_CHECK=true` skips the metadata server.
    "NO_GCE_CHECK",
    // gcp-metadata (Node): `none` skips the metadata server.
    "METADATA_SERVER_DETECTION",
    // google-auth (Python): `strict` refuses a metadata host that is not Google's.
    "GCE_METADATA_MTLS_MODE",
];

/// Removed when the ECS API is served: every source an AWS SDK's default
/// chain tries before the container endpoint, and the container variables
/// the broker replaces.
pub const AWS_REMOVED: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    // boto's old name for the session token, still read by botocore.
    "AWS_SECURITY_TOKEN",
    "AWS_CREDENTIAL_EXPIRATION",
    // A profile (static keys, role_arn, sso, credential_process) wins over the container.
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    // Web identity (EKS IRSA and the like) comes before the container endpoint.
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    // RELATIVE_URI wins over FULL_URI; the token variables are the broker's now.
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    // keyway's own Google → AWS source: a nested keyway uses the broker too.
    "KEYWAY_AWS_WEB_IDENTITY",
    "KEYWAY_AWS_WEB_IDENTITY_AUDIENCE",
];

/// The variable that names the file holding the ECS API's token.
pub const AWS_TOKEN_FILE_VAR: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
/// The secrets API's base URL (`http://127.0.0.1:PORT`), for workloads that
/// are not written for the agent's fixed `localhost:2773`.
pub const SECRETS_URL_VAR: &str = "KEYWAY_SECRETS_URL";
/// The variable that names the file holding the secrets API's token (the
/// same token as the ECS API's).
pub const SECRETS_TOKEN_FILE_VAR: &str = "KEYWAY_SECRETS_TOKEN_FILE";

/// What to change in a workload's environment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChildEnv {
    /// Variables to set, in order.
    pub set: Vec<(&'static str, String)>,
    /// Variables to remove (before setting).
    pub remove: Vec<&'static str>,
    /// Whether the workload needs the token in a file named by
    /// [`AWS_TOKEN_FILE_VAR`] (the caller writes it: a private file for
    /// `exec`, a shared volume for a sidecar).
    pub aws_token_file: bool,
    /// Whether it needs it in a file named by [`SECRETS_TOKEN_FILE_VAR`].
    pub secrets_token_file: bool,
}

impl ChildEnv {
    /// For a broker serving the metadata API (`google`), the ECS API (`aws`,
    /// with the region keyway's AWS chain found) and the secrets API
    /// (`secrets`) at `addr`; `env` is
    /// the environment the workload would otherwise get.
    pub fn new(
        addr: SocketAddr,
        google: bool,
        aws: Option<Option<&str>>,
        secrets: bool,
        env: &Env,
    ) -> ChildEnv {
        let mut c = ChildEnv::default();
        if secrets {
            c.set.push((SECRETS_URL_VAR, format!("http://{addr}")));
            c.secrets_token_file = true;
        }
        if google {
            c.remove.extend_from_slice(GOOGLE_REMOVED);
            c.set.push(("GCE_METADATA_HOST", addr.to_string()));
            c.set.push(("GCE_METADATA_IP", addr.to_string()));
        }
        if let Some(region) = aws {
            c.remove.extend_from_slice(AWS_REMOVED);
            c.set.push((
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                format!("http://{addr}{}", crate::ecs::PATH),
            ));
            c.aws_token_file = true;
            // The profile that may have named the region is gone: keep the
            // region (AWS_REGION for most SDKs, AWS_DEFAULT_REGION for boto3).
            if env.non_empty("AWS_REGION").is_none()
                && env.non_empty("AWS_DEFAULT_REGION").is_none()
                && let Some(r) = region
            {
                c.set.push(("AWS_REGION", r.to_owned()));
                c.set.push(("AWS_DEFAULT_REGION", r.to_owned()));
            }
        }
        c
    }

    /// Applies the removals and settings to `env`.
    pub fn apply(&self, env: &mut Env) {
        for name in &self.remove {
            env.remove(name);
        }
        for (name, value) in &self.set {
            env.set(name, value);
        }
    }

    /// Shell lines (`unset …`, `export K='V'`) a sidecar prints for the
    /// containers beside it; `token_file` is where it wrote the ECS token.
    pub fn shell(&self, token_file: Option<&str>) -> String {
        let mut out = String::new();
        if !self.remove.is_empty() {
            out.push_str("unset ");
            out.push_str(&self.remove.join(" "));
            out.push('\n');
        }
        for (k, v) in &self.set {
            out.push_str(&format!("export {k}={}\n", quote(v)));
        }
        if let Some(f) = token_file {
            if self.aws_token_file {
                out.push_str(&format!("export {AWS_TOKEN_FILE_VAR}={}\n", quote(f)));
            }
            if self.secrets_token_file {
                out.push_str(&format!("export {SECRETS_TOKEN_FILE_VAR}={}\n", quote(f)));
            }
        }
        out
    }
}

/// Single-quoted for a POSIX shell.
fn quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn google_and_aws_variables() {
        let addr: SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let env = Env::new()
            .with("GOOGLE_APPLICATION_CREDENTIALS", "/cred.json")
            .with("AWS_PROFILE", "dev")
            .with(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                "/v2/credentials/x",
            )
            .with("NO_GCE_CHECK", "true")
            .with("PATH", "/bin");
        let c = ChildEnv::new(addr, true, Some(Some("ap-northeast-1")), false, &env);
        let mut child = env.clone();
        c.apply(&mut child);
        assert_eq!(child.get("GOOGLE_APPLICATION_CREDENTIALS"), None);
        assert_eq!(child.get("NO_GCE_CHECK"), None);
        assert_eq!(child.get("AWS_PROFILE"), None);
        assert_eq!(child.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"), None);
        assert_eq!(child.get("GCE_METADATA_HOST"), Some("127.0.0.1:4321"));
        assert_eq!(child.get("GCE_METADATA_IP"), Some("127.0.0.1:4321"));
        assert_eq!(
            child.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            Some("http://127.0.0.1:4321/aws/credentials")
        );
        assert_eq!(child.get("AWS_REGION"), Some("ap-northeast-1"));
        assert_eq!(child.get("AWS_DEFAULT_REGION"), Some("ap-northeast-1"));
        assert_eq!(child.get("PATH"), Some("/bin"));
        assert!(c.aws_token_file);
        let sh = c.shell(Some("/run/keyway/token"));
        assert!(
            sh.starts_with("unset GOOGLE_APPLICATION_CREDENTIALS "),
            "{sh}"
        );
        assert!(
            sh.contains("export GCE_METADATA_HOST='127.0.0.1:4321'\n"),
            "{sh}"
        );
        assert!(sh.contains("export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE='/run/keyway/token'\n"));
    }

    #[test]
    fn only_what_is_served() {
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let env = Env::new()
            .with("AWS_PROFILE", "dev")
            .with("AWS_REGION", "us-east-1");
        let c = ChildEnv::new(addr, true, None, true, &env);
        assert!(!c.remove.contains(&"AWS_PROFILE"));
        assert!(!c.aws_token_file && c.secrets_token_file);
        assert!(
            c.set
                .contains(&(SECRETS_URL_VAR, "http://127.0.0.1:1".into()))
        );
        let sh = c.shell(Some("/t"));
        assert!(
            sh.contains("export KEYWAY_SECRETS_TOKEN_FILE='/t'\n"),
            "{sh}"
        );
        assert!(!sh.contains(AWS_TOKEN_FILE_VAR), "{sh}");
        let c = ChildEnv::new(addr, false, Some(Some("eu-west-1")), false, &env);
        assert!(!c.remove.contains(&"GOOGLE_APPLICATION_CREDENTIALS"));
        // The workload's own region stands.
        assert!(!c.set.iter().any(|(k, _)| *k == "AWS_REGION"));
        assert_eq!(quote("a'b"), "'a'\\''b'");
    }
}
