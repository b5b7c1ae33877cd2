//! [`CloudError`]: what opening, seeding and refreshing the local cloud can
//! fail with. It sits below `cloud.rs` and the AWS seeding, which both return it.

use crate::crypto::CryptoError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error(
        "the store was seeded from a different world file (sha256 {seeded}, this one is {given}); the store keeps its world until --reset"
    )]
    WorldDiffers { seeded: String, given: String },
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}
