//! The world file (`keyway_cloud::world::parse`), Google and AWS halves.
//!
//! Beyond "does not panic": every error names the file it was given and a
//! line inside the text (or 0 when the TOML parser gives no position), with a
//! non-empty message. The file is placed in a directory that does not exist,
//! so the files a world names relative to itself (`oidc.jwks_file`) are
//! refused rather than read.
#![no_main]

use libfuzzer_sys::fuzz_target;

const FILE: &str = "/nonexistent-keyway-fuzz/world.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = keyway_cloud::world::parse(FILE, src) {
        assert_eq!(e.file, FILE);
        let lines = src.split('\n').count();
        assert!(
            e.line <= lines,
            "line {} of a {lines}-line file: {e}",
            e.line
        );
        assert!(
            !e.message.trim().is_empty(),
            "an empty message at line {}",
            e.line
        );
        assert!(e.to_string().starts_with(&format!("{FILE}:{}: ", e.line)));
    }
});
