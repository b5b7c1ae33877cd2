//! The child's environment, built once as the exact `NAME=value\0` strings the
//! kernel will copy into the new process, and wiped when dropped.
//!
//! This is where secret values stop being [`Secret`]s: each plan variable is
//! copied exactly once, into a buffer allocated at its final size (so no
//! reallocation leaves a stray copy behind), and the `Secret` it came from is
//! dropped (and so zeroised) right away. The block itself zeroises every buffer
//! on drop, which [`crate::run`] does immediately after the spawn.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::CString;
use std::path::Path;

use keyway_core::{Env, Secret};
use zeroize::Zeroize;

use crate::error::Error;

/// Where a variable of the block came from; only the plan's own entries may not collide.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Origin {
    Base,
    Plan,
}

/// `NAME=value` strings for `execve`, ordered by name, zeroised on drop.
pub(crate) struct EnvBlock {
    entries: BTreeMap<String, (Origin, CString)>,
}

impl EnvBlock {
    /// The parent's environment minus `remove`, then the plan's variables on top
    /// (a plan variable wins over a base one of the same name, even one listed in
    /// `remove`). Consumes `vars` so their plaintext lives on only in this block.
    pub(crate) fn build(
        base: &Env,
        remove: &[String],
        vars: Vec<(String, Secret<Vec<u8>>)>,
    ) -> Result<EnvBlock, Error> {
        let removed: BTreeSet<&str> = remove.iter().map(String::as_str).collect();
        let mut block = EnvBlock {
            entries: BTreeMap::new(),
        };
        for (name, value) in base.iter() {
            if removed.contains(name) {
                continue;
            }
            block.insert(name, value.as_bytes(), Origin::Base)?;
        }
        for (name, value) in vars {
            block.insert(&name, value.expose(), Origin::Plan)?;
            // `value` drops here: the Secret zeroises its buffer.
        }
        Ok(block)
    }

    /// Sets a plan variable to a file path (file delivery). Paths are not secret.
    pub(crate) fn set_path(&mut self, name: &str, path: &Path) -> Result<(), Error> {
        use std::os::unix::ffi::OsStrExt;
        self.insert(name, path.as_os_str().as_bytes(), Origin::Plan)
    }

    /// Fails unless `name` could be added as a plan variable; used to check file
    /// variables before anything is written to disk.
    pub(crate) fn check_plan_name(&self, name: &str) -> Result<(), Error> {
        validate_name(name)?;
        match self.entries.get(name) {
            Some((Origin::Plan, _)) => Err(Error::DuplicateVar {
                var: name.to_owned(),
            }),
            _ => Ok(()),
        }
    }

    /// The value of `name` as the child will see it (used for `PATH` lookup).
    pub(crate) fn get(&self, name: &str) -> Option<&[u8]> {
        let (_, entry) = self.entries.get(name)?;
        entry.as_bytes().get(name.len() + 1..)
    }

    /// The variable names, for logging.
    pub(crate) fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The strings to hand to `execve`, in name order.
    pub(crate) fn strings(&self) -> Vec<&CString> {
        self.entries.values().map(|(_, s)| s).collect()
    }

    fn insert(&mut self, name: &str, value: &[u8], origin: Origin) -> Result<(), Error> {
        validate_name(name)?;
        if value.contains(&0) {
            return Err(Error::NulInValue {
                var: name.to_owned(),
            });
        }
        if origin == Origin::Plan && matches!(self.entries.get(name), Some((Origin::Plan, _))) {
            return Err(Error::DuplicateVar {
                var: name.to_owned(),
            });
        }
        let entry = entry_string(name, value)?;
        if let Some((_, mut old)) = self.entries.insert(name.to_owned(), (origin, entry)) {
            wipe(&mut old);
        }
        Ok(())
    }
}

impl Drop for EnvBlock {
    fn drop(&mut self) {
        for (_, (_, entry)) in self.entries.iter_mut() {
            wipe(entry);
        }
    }
}

/// A name the OS accepts in an environment: non-empty, no `=`, no NUL.
pub(crate) fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(Error::InvalidVarName {
            var: name.to_owned(),
        });
    }
    Ok(())
}

/// `name=value\0` in a buffer allocated once at its final size: `CString`
/// neither grows nor shrinks it, so the only copy of `value` is the one wiped
/// by [`wipe`]. Callers have already rejected NUL bytes in `name` and `value`.
fn entry_string(name: &str, value: &[u8]) -> Result<CString, Error> {
    let mut buf = Vec::with_capacity(name.len() + 1 + value.len() + 1);
    buf.extend_from_slice(name.as_bytes());
    buf.push(b'=');
    buf.extend_from_slice(value);
    buf.push(0);
    CString::from_vec_with_nul(buf).map_err(|e| {
        // Unreachable after the checks above, but never leave the copy behind.
        e.into_bytes().zeroize();
        Error::NulInValue {
            var: name.to_owned(),
        }
    })
}

/// Overwrites a `CString`'s whole buffer with zeros and frees it.
fn wipe(s: &mut CString) {
    let mut bytes = std::mem::take(s).into_bytes_with_nul();
    bytes.zeroize();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(v: &str) -> Secret<Vec<u8>> {
        Secret::new(v.as_bytes().to_vec())
    }

    fn as_strings(b: &EnvBlock) -> Vec<String> {
        b.strings()
            .iter()
            .map(|c| c.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn base_minus_removed_plus_plan() {
        let base = Env::new()
            .with("KEEP", "1")
            .with("DROP", "x")
            .with("OVER", "old");
        let vars = vec![
            ("OVER".to_owned(), secret("new")),
            ("NEW".to_owned(), secret("v")),
        ];
        let b = EnvBlock::build(&base, &["DROP".to_owned()], vars).unwrap();
        assert_eq!(as_strings(&b), ["KEEP=1", "NEW=v", "OVER=new"]);
        assert_eq!(b.get("OVER"), Some(&b"new"[..]));
        assert_eq!(b.get("DROP"), None);
    }

    #[test]
    fn plan_var_wins_even_when_removed() {
        let base = Env::new().with("A", "base");
        let b = EnvBlock::build(
            &base,
            &["A".to_owned()],
            vec![("A".to_owned(), secret("plan"))],
        )
        .unwrap();
        assert_eq!(as_strings(&b), ["A=plan"]);
    }

    #[test]
    fn binary_values_without_nul_are_allowed() {
        let vars = vec![("BIN".to_owned(), Secret::new(vec![0xff, 0x80, b'=', 1]))];
        let b = EnvBlock::build(&Env::new(), &[], vars).unwrap();
        assert_eq!(b.get("BIN"), Some(&[0xff, 0x80, b'=', 1][..]));
    }

    #[test]
    fn nul_in_value_names_the_variable_only() {
        let vars = vec![("TOKEN".to_owned(), secret("s3cr3t\0tail"))];
        let err = EnvBlock::build(&Env::new(), &[], vars).err().unwrap();
        assert!(matches!(&err, Error::NulInValue { var } if var == "TOKEN"));
        assert!(!format!("{err} {err:?}").contains("s3cr3t"));
        // A base variable is checked too.
        let base = Env::new().with("B", "a\0b");
        assert!(
            matches!(EnvBlock::build(&base, &[], vec![]), Err(Error::NulInValue { var }) if var == "B")
        );
    }

    #[test]
    fn bad_names_and_duplicates() {
        for bad in ["", "A=B", "A\0"] {
            let r = EnvBlock::build(&Env::new(), &[], vec![(bad.to_owned(), secret("v"))]);
            assert!(matches!(r, Err(Error::InvalidVarName { .. })), "{bad:?}");
        }
        let dup = vec![("A".to_owned(), secret("1")), ("A".to_owned(), secret("2"))];
        assert!(
            matches!(EnvBlock::build(&Env::new(), &[], dup), Err(Error::DuplicateVar { var }) if var == "A")
        );
    }

    #[test]
    fn file_vars_collide_with_plan_vars_not_base_vars() {
        let base = Env::new().with("BASE", "x");
        let mut b = EnvBlock::build(&base, &[], vec![("PLAN".to_owned(), secret("v"))]).unwrap();
        assert!(b.check_plan_name("BASE").is_ok());
        assert!(matches!(
            b.check_plan_name("PLAN"),
            Err(Error::DuplicateVar { .. })
        ));
        assert!(matches!(
            b.check_plan_name("A=B"),
            Err(Error::InvalidVarName { .. })
        ));
        b.set_path("BASE", Path::new("/dev/shm/k/f")).unwrap();
        assert_eq!(b.get("BASE"), Some(&b"/dev/shm/k/f"[..]));
        assert!(matches!(
            b.set_path("BASE", Path::new("/x")),
            Err(Error::DuplicateVar { .. })
        ));
    }

    #[test]
    fn entry_buffer_is_allocated_once_at_final_size() {
        let s = entry_string("NAME", b"value").unwrap();
        assert_eq!(s.as_bytes_with_nul(), b"NAME=value\0");
        // The invariant entry_string relies on: a Vec whose capacity equals its
        // length becomes the CString's buffer as is, with no copy.
        let mut buf = Vec::with_capacity(5);
        buf.extend_from_slice(b"A=bc\0");
        let before = buf.as_ptr();
        let c = CString::from_vec_with_nul(buf).unwrap();
        assert_eq!(c.as_ptr().cast::<u8>(), before);
    }
}
