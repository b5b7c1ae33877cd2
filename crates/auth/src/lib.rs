//! keyway-auth (being built).
