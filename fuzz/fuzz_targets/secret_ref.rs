//! The secret-reference grammar (`keyway_core::SecretRef`).
//!
//! Beyond "does not panic": a reference that parses prints (Display) as a
//! reference that parses back to the same value, and prints the same again;
//! `parse_implicit` agrees with `parse` on the prefixed forms and ignores
//! everything else; an error names the reference as written.
#![no_main]

use keyway_core::SecretRef;
use libfuzzer_sys::fuzz_target;

const PREFIXES: [&str; 3] = ["sm://", "gcp:secretmanager:", "aws-sm://"];

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = SecretRef::parse(s);
    match &parsed {
        Ok(r) => {
            let shown = r.to_string();
            let again = SecretRef::parse(&shown).unwrap_or_else(|e| {
                panic!("{s:?} displays as {shown:?}, which does not parse: {e}")
            });
            assert_eq!(
                &again, r,
                "{s:?} displays as {shown:?}, which parses differently"
            );
            assert_eq!(again.to_string(), shown, "Display is not stable for {s:?}");
        }
        Err(e) => {
            assert_eq!(e.reference, s);
            assert!(!e.reason.is_empty(), "an empty reason for {s:?}");
        }
    }
    match SecretRef::parse_implicit(s) {
        Ok(None) => assert!(
            !PREFIXES.iter().any(|p| s.starts_with(p)),
            "{s:?} has a reference prefix but was taken as a plain value"
        ),
        Ok(Some(r)) => assert_eq!(Ok(r), parsed, "parse_implicit and parse disagree on {s:?}"),
        Err(e) => assert_eq!(Err(e), parsed, "parse_implicit and parse disagree on {s:?}"),
    }
});
