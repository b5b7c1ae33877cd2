//! Fetching secret references. The caller brings credentials (a bearer token for
//! Google, an AWS credentials provider for Secrets Manager); this crate turns
//! references into values: concurrently, with a bound, verifying checksums,
//! extracting JSON fields, and classifying every failure so the user learns
//! whether the scopes, the IAM role, the secret itself or the network is at
//! fault. Every request goes through keyway-http, the one client HTTP path:
//! its retry policy (transient failures retried inside the deadline) and a cap
//! on each answer at the size the real API can produce.

pub mod aws;
pub mod error;
pub mod field;
pub mod gcp;

pub use error::FetchError;

use futures::StreamExt;
use keyway_core::{Clock, Secret, SecretRef};
use keyway_http::RetryPolicy;
use std::sync::Arc;
use std::time::Duration;

/// Where and how to fetch.
#[derive(Clone)]
pub struct Fetcher {
    pub http: reqwest::Client,
    /// Secret Manager's base URL, ending in '/' (`https://secretmanager.googleapis.com/`).
    pub secretmanager: String,
    /// How many fetches run at once.
    pub concurrency: usize,
    /// Retries and timeouts of one reference: its `deadline` is the whole time
    /// allowed for it, retries included.
    pub retry: RetryPolicy,
    /// AWS credentials, for Secrets Manager references.
    pub aws: Option<keyway_auth::AwsCredentialsProvider>,
    /// The environment endpoints are read from (AWS_ENDPOINT_URL...).
    pub env: keyway_core::Env,
    /// The time requests are signed at (SigV4).
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("secretmanager", &self.secretmanager)
            .field("concurrency", &self.concurrency)
            .field("retry", &self.retry)
            .field("aws", &self.aws)
            .finish_non_exhaustive()
    }
}

/// The retry policy for fetching within `deadline`: keyway-http's defaults,
/// with each attempt allowed at most 10 s (a stalled server leaves time to
/// try again).
pub fn retry_within(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        deadline,
        attempt_timeout: deadline.min(Duration::from_secs(10)),
        ..RetryPolicy::default()
    }
}

/// A fetched value and the version the service answered with.
#[derive(Debug)]
pub struct Fetched {
    pub value: Secret<Vec<u8>>,
    /// Which version was read, when the answer says (not secret): Secret
    /// Manager's version number (the last segment of the accessed version's
    /// `name`, so `latest` is resolved), Secrets Manager's `VersionId`.
    pub version: Option<String>,
}

pub const SECRETMANAGER_DEFAULT: &str = "https://secretmanager.googleapis.com/";

/// Secret Manager's base URL for `env`: gcloud's endpoint override, else
/// Google's; always ending in `/` (paths follow as `v1/projects/…`).
pub fn secretmanager_base(env: &keyway_core::Env) -> String {
    let mut base = env
        .non_empty(keyway_core::vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER)
        .unwrap_or(SECRETMANAGER_DEFAULT)
        .to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    base
}

impl Fetcher {
    /// A fetcher for `env`'s endpoints; `clock` signs AWS requests (the binary
    /// passes the system clock, tests a manual one).
    pub fn new(http: reqwest::Client, env: &keyway_core::Env, clock: Arc<dyn Clock>) -> Fetcher {
        Fetcher {
            http,
            secretmanager: secretmanager_base(env),
            concurrency: 16,
            retry: retry_within(Duration::from_secs(30)),
            aws: None,
            env: env.clone(),
            clock,
        }
    }

    /// Fetches one reference: the payload (or the JSON field it names).
    pub async fn fetch(
        &self,
        r: &SecretRef,
        google_token: Option<&Secret<String>>,
    ) -> Result<Secret<Vec<u8>>, FetchError> {
        self.fetch_versioned(r, google_token).await.map(|f| f.value)
    }

    /// Fetches one reference, with the version the service answered with.
    pub async fn fetch_versioned(
        &self,
        r: &SecretRef,
        google_token: Option<&Secret<String>>,
    ) -> Result<Fetched, FetchError> {
        let (payload, version) = match &r.source {
            keyway_core::Reference::GcpSecretManager { .. } => {
                let token = google_token.ok_or(FetchError::NoCredentials {
                    reference: r.source.to_string(),
                })?;
                gcp::access_versioned(self, &r.source, token).await?
            }
            keyway_core::Reference::AwsSecretsManager { .. } => {
                aws::get_secret_value_versioned(self, &r.source).await?
            }
        };
        // The ECS json-key is a top-level field.
        let path = match (&r.field, &r.source) {
            (Some(p), _) => Some(p.clone()),
            (
                None,
                keyway_core::Reference::AwsSecretsManager {
                    json_key: Some(k), ..
                },
            ) => Some(vec![k.clone()]),
            _ => None,
        };
        let value = match path {
            None => payload,
            Some(path) => field::extract(&payload, &path).map_err(|reason| FetchError::Field {
                reference: r.to_string(),
                reason,
            })?,
        };
        Ok(Fetched { value, version })
    }

    /// Fetches every reference, at most `concurrency` at a time. Results come
    /// back in the order of `refs`.
    pub async fn fetch_all(
        &self,
        refs: &[SecretRef],
        google_token: Option<&Secret<String>>,
    ) -> Vec<Result<Secret<Vec<u8>>, FetchError>> {
        self.fetch_all_versioned(refs, google_token)
            .await
            .into_iter()
            .map(|r| r.map(|f| f.value))
            .collect()
    }

    /// [`Fetcher::fetch_all`], with the version each value came from.
    pub async fn fetch_all_versioned(
        &self,
        refs: &[SecretRef],
        google_token: Option<&Secret<String>>,
    ) -> Vec<Result<Fetched, FetchError>> {
        let mut out: Vec<Option<Result<Fetched, FetchError>>> =
            (0..refs.len()).map(|_| None).collect();
        let mut stream = futures::stream::iter(refs.iter().enumerate())
            .map(|(i, r)| async move { (i, self.fetch_versioned(r, google_token).await) })
            .buffer_unordered(self.concurrency.max(1));
        while let Some((i, res)) = stream.next().await {
            out[i] = Some(res);
        }
        out.into_iter()
            .map(|r| {
                r.unwrap_or(Err(FetchError::Internal(
                    "a fetch produced no result".into(),
                )))
            })
            .collect()
    }
}
