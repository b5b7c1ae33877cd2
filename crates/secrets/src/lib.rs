//! keyway-secrets (being built).
