//! What a first-time user reads on stderr: plain text unless stderr is a
//! terminal (no ANSI colour and no timestamp in a file, whatever TERM says;
//! NO_COLOR honoured), lines no longer than about 100 columns, and no internal
//! placeholder in an error.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use support::*;

/// Runs keyway with exactly `env` and stderr redirected to a file; returns
/// the exit code and what the file holds.
fn stderr_to_file(dir: &Path, env: &BTreeMap<String, String>, args: &[&str]) -> (i32, String) {
    let path = dir.join("stderr.txt");
    let file = std::fs::File::create(&path).unwrap();
    let status = Command::new(KEYWAY)
        .env_clear()
        .envs(env)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .status()
        .unwrap();
    (
        status.code().unwrap_or(-1),
        std::fs::read_to_string(&path).unwrap(),
    )
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn warnings_before_an_error_are_plain_text_in_a_file() {
    let dir = tempfile::tempdir().unwrap();
    // A proxy URL that does not parse (keyway warns and goes on without it), and
    // user credentials whose token endpoint refuses connections (keyway fails).
    let creds = dir.path().join("adc.json");
    std::fs::write(
        &creds,
        serde_json::json!({
            "type": "authorized_user",
            "client_id": "id.apps.googleusercontent.com",
            "client_secret": "not-a-real-secret",
            "refresh_token": "1//not-a-real-token",
            "token_uri": format!("http://127.0.0.1:{}/token", closed_port()),
        })
        .to_string(),
    )
    .unwrap();
    for term in ["xterm-256color", "dumb"] {
        let env = BTreeMap::from([
            ("PATH".to_owned(), "/usr/bin:/bin".to_owned()),
            ("HOME".to_owned(), dir.path().display().to_string()),
            ("TERM".to_owned(), term.to_owned()),
            ("HTTPS_PROXY".to_owned(), "http://[not a url".to_owned()),
            (
                "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
                creds.display().to_string(),
            ),
        ]);
        let (code, err) = stderr_to_file(dir.path(), &env, &["get", "sm://p/s"]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("warning: "),
            "TERM={term}: expected a warning: {err}"
        );
        assert!(
            !err.contains('\u{1b}'),
            "TERM={term}: ANSI escapes in a file: {err:?}"
        );
        for line in err.lines() {
            assert!(
                !line.starts_with(|c: char| c.is_ascii_digit()),
                "TERM={term}: a timestamp at the default level: {line}"
            );
        }
        assert!(err.contains("error: "), "{err}");
    }
}
