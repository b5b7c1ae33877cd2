//! What the chain consults ([`AwsChainOptions`]) and how it finds IMDS
//! ([`ImdsEndpoint`]).

use super::source::AwsSourceKind;
use std::time::Duration;

/// Options of the chain: which sources it consults and how IMDS is reached.
/// A narrower chain is a typed choice here (as aws-config's provider
/// configuration is), never a rewritten environment.
#[derive(Debug, Clone)]
pub struct AwsChainOptions {
    /// The sources consulted, in the chain's fixed order whatever the order
    /// here; the others are skipped and not reported as tried.
    pub sources: Vec<AwsSourceKind>,
    /// Where IMDS is.
    pub imds: ImdsEndpoint,
    /// With [`ImdsEndpoint::FromEnvironment`] and no endpoint set: whether to
    /// probe IMDS at its default address when nothing else answered.
    pub probe_default_imds: bool,
    /// Timeout of each IMDS request (the SDKs use 1 s).
    pub imds_timeout: Duration,
}

/// How the chain finds IMDS. `AWS_EC2_METADATA_DISABLED=true` turns it off in
/// every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImdsEndpoint {
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the default address (only if
    /// `probe_default_imds`), as the SDKs do.
    FromEnvironment,
    /// This base URL (no trailing '/'), e.g. from a credential file.
    At(String),
    /// None: the reason is reported as the source's "not configured".
    Unavailable(String),
}

impl AwsChainOptions {
    /// Whether the chain consults `kind`.
    pub fn consults(&self, kind: AwsSourceKind) -> bool {
        self.sources.contains(&kind)
    }
}

impl Default for AwsChainOptions {
    /// The SDKs' chain: every source, IMDS from the environment, probed at its
    /// default address.
    fn default() -> Self {
        AwsChainOptions {
            sources: AwsSourceKind::ALL.to_vec(),
            imds: ImdsEndpoint::FromEnvironment,
            probe_default_imds: true,
            imds_timeout: Duration::from_secs(1),
        }
    }
}
