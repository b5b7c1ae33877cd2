//! Secret values never appear in errors (message, `Debug`, source chain) or in
//! logs, across successful runs and failures at every stage.

use std::os::unix::fs::PermissionsExt;

use keyway_exec::{Error, Plan, run};

use crate::support::{SECRET, Scratch, captured_logs, secret};

/// Message, Debug, and every source in the chain.
fn everything_said_about(err: &Error) -> String {
    let mut all = format!("{err}\n{err:?}\n");
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        all.push_str(&format!("{s}\n{s:?}\n"));
        source = s.source();
    }
    all
}

#[test]
fn secret_values_stay_out_of_errors_and_logs() {
    let s = Scratch::new();
    let with_secrets = |plan: Plan| {
        plan.var("TOKEN", secret(SECRET))
            .file("KEY_FILE", "key", secret(SECRET))
    };
    let not_executable = s.out("not-executable");
    std::fs::write(&not_executable, "data").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();

    let plans: Vec<(&str, Plan)> = vec![
        (
            "succeeds",
            with_secrets(s.sh(r#"[ "$TOKEN" = "$(cat "$KEY_FILE")" ]"#)),
        ),
        ("child fails", with_secrets(s.sh("exit 4"))),
        (
            "nul in value",
            with_secrets(s.sh("true")).var("BAD", secret(&format!("{SECRET}\0"))),
        ),
        (
            "bad file name",
            with_secrets(s.sh("true")).file("OTHER", "../x", secret(SECRET)),
        ),
        (
            "duplicate file",
            with_secrets(s.sh("true")).file("OTHER", "key", secret(SECRET)),
        ),
        (
            "not found",
            with_secrets(Plan::new("/nonexistent/app", s.env())),
        ),
        (
            "not executable",
            with_secrets(Plan::new(&not_executable, s.env())),
        ),
        ("bad argument", with_secrets(s.sh("true").args(["a\0b"]))),
    ];

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (what, plan) in plans {
        match rt.block_on(run(plan)) {
            Ok(exit) => assert!(
                what == "succeeds" && exit.code() == 0 || what == "child fails",
                "{what}: {exit:?}"
            ),
            Err(err) => {
                assert!(what != "succeeds" && what != "child fails", "{what}: {err}");
                let said = everything_said_about(&err);
                assert!(!said.contains(SECRET), "{what}: {said}");
            }
        }
    }

    // Every in-process test logs into the same capture (see
    // support::captured_logs), so this also checks the other tests' runs.
    let logs = captured_logs();
    // The capture works: names and events are there...
    assert!(
        logs.contains("TOKEN") && logs.contains("workload started"),
        "{logs}"
    );
    // ...values are not.
    assert!(!logs.contains(SECRET), "{logs}");
    assert!(s.runtime_leftovers().is_empty());
}
