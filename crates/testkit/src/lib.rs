//! keyway-testkit (being built).
