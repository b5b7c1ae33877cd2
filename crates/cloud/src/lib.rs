//! keyway's local cloud: an offline stand-in for the parts of Google Cloud and
//! AWS that workloads use to get secrets and identities, with the same
//! wire formats and the same IAM decisions, 403s included.
//!
//! Layout: [`world`] parses the declarative world file; [`store`] is the only
//! place with SQL; [`iam`] decides; [`jwt`] verifies every JWT a caller presents; [`google`] serves the REST APIs and
//! [`metadata`] one metadata server per VM; [`aws`] serves STS and Secrets
//! Manager, IMDSv2 per EC2 instance and ECS credentials per task; [`server`] wires them to loopback
//! sockets and [`endpoints`] says where they are; [`datadir`] keeps one running cloud per data directory, private to its owner. This crate never depends on keyway's client crates, so the cloud
//! cannot share a client's bugs.

pub mod aws;
pub mod cel;
pub mod cloud;
pub mod crypto;
pub mod datadir;
pub mod endpoints;
pub mod error;
pub mod google;
pub mod iam;
pub mod jwt;
pub mod metadata;
pub mod server;
pub mod store;
pub mod time;
pub mod world;
