//! The environment as a value. The binary captures the process environment once
//! ([`Env::from_process`]) and hands it down; libraries and tests never call
//! `std::env::var` themselves, so a test can describe a whole machine as data.

use std::collections::BTreeMap;
use std::ffi::OsString;

/// A snapshot of environment variables.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
}

impl std::fmt::Debug for Env {
    // Values may be secrets (a reference resolves to one, a token may sit in a
    // variable): print only the names.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.vars.keys()).finish()
    }
}

impl Env {
    pub fn new() -> Self {
        Env::default()
    }

    /// The current process environment. Variables whose name or value is not
    /// UTF-8 are skipped (keyway reads none such).
    pub fn from_process() -> Self {
        let vars = std::env::vars_os()
            .filter_map(|(k, v): (OsString, OsString)| {
                Some((k.into_string().ok()?, v.into_string().ok()?))
            })
            .collect();
        Env { vars }
    }

    pub fn with(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.insert(name.to_owned(), value.to_owned());
    }

    pub fn remove(&mut self, name: &str) {
        self.vars.remove(name);
    }

    /// The value, or `None` when unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The value when set and not empty (most tools treat `VAR=` as unset).
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A boolean switch: `1`, `true`, `yes`, `on` (any case) are true.
    pub fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name)
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref(),
            Some("1" | "true" | "yes" | "on")
        )
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_names_only() {
        let e = Env::new().with("TOKEN", "s3cr3t");
        let d = format!("{e:?}");
        assert!(d.contains("TOKEN"));
        assert!(!d.contains("s3cr3t"));
    }

    #[test]
    fn flags() {
        let e = Env::new().with("A", "True").with("B", "0").with("C", "");
        assert!(e.flag("A"));
        assert!(!e.flag("B"));
        assert!(!e.flag("C"));
        assert!(!e.flag("D"));
        assert_eq!(e.non_empty("C"), None);
    }
}
