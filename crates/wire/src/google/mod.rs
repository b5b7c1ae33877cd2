//! Google Cloud wire formats: the error envelope every REST API shares, OAuth2 and
//! metadata-server token responses, and the resources of the APIs the local cloud
//! serves (Secret Manager, IAM policies, Compute instances), and Workload Identity
//! Federation's STS token exchange and service-account credentials ([`sts`]).

pub mod compute;
pub mod error;
pub mod iam;
pub mod oauth2;
pub mod secretmanager;
pub mod sts;

pub use error::{ErrorBody, ErrorDetail, GoogleError};
