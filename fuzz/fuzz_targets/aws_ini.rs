//! The AWS shared config and credentials file reader
//! (`keyway_auth::aws::parse_ini`).
//!
//! Beyond "does not panic": what it returns is in normal form (section names
//! trimmed with single spaces inside, keys trimmed and lower-case, values
//! trimmed, nothing spanning a line), and writing that back out as
//! `[section]` / `key = value` lines reads back to the same map.
#![no_main]

use keyway_auth::aws::parse_ini;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ini = parse_ini(text);
    let mut out = String::new();
    for (section, keys) in &ini {
        assert_eq!(
            section,
            &section.split_whitespace().collect::<Vec<_>>().join(" "),
            "section name not normalised"
        );
        out.push_str(&format!("[{section}]\n"));
        for (k, v) in keys {
            assert_eq!(k, k.trim(), "key not trimmed");
            assert_eq!(k, &k.to_ascii_lowercase(), "key not lower-case");
            assert!(!k.contains('='), "key {k:?} holds '='");
            assert_eq!(v, v.trim(), "value not trimmed");
            assert!(
                !k.contains('\n') && !v.contains('\n'),
                "a line break inside {k:?} = {v:?}"
            );
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    assert_eq!(parse_ini(&out), ini, "written back as\n{out}");
});
