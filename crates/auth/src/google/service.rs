//! [`Service`]: which Google service a credentials file's URL must belong
//! to (STS or IAM Credentials), and the endpoint override that lets another
//! origin stand for it.

use keyway_core::vars;

/// Which Google service a credential file's URL must belong to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Service {
    Sts,
    IamCredentials,
}

impl Service {
    /// The service's host prefix: `sts`, `iamcredentials`.
    pub fn name(self) -> &'static str {
        match self {
            Service::Sts => "sts",
            Service::IamCredentials => "iamcredentials",
        }
    }

    /// The endpoint override that makes another origin acceptable.
    pub fn override_var(self) -> &'static str {
        match self {
            Service::Sts => vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_STS,
            Service::IamCredentials => vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS,
        }
    }
}
