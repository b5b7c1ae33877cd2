//! Environment delivery: the child sees exactly the base environment minus the
//! removed names plus the plan's variables, with values byte for byte.

use std::collections::BTreeMap;

use keyway_core::Secret;
use keyway_exec::{ChildExit, Error, run};

use crate::support::{SECRET, Scratch, secret};

/// The child's environment as written by `env -0`, minus what `sh` adds itself.
fn child_env(s: &Scratch) -> BTreeMap<String, String> {
    s.read("env")
        .split('\0')
        .filter(|kv| !kv.is_empty())
        .map(|kv| kv.split_once('=').unwrap())
        .filter(|(k, _)| *k != "PWD")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[tokio::test]
async fn child_env_is_base_minus_removed_plus_plan() {
    let s = Scratch::new();
    let mut plan = s
        .sh(r#"env -0 > "$OUT/env""#)
        .var("OVER", secret("from-plan"))
        .var("TOKEN", secret(SECRET));
    plan.base_env = s
        .env()
        .with("KEEP", "kept")
        .with("DROP", "dropped")
        .with("OVER", "from-base");
    plan.remove = vec!["DROP".into(), "NOT_SET".into()];
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));

    let got = child_env(&s);
    let mut want: BTreeMap<String, String> = s
        .env()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in [("KEEP", "kept"), ("OVER", "from-plan"), ("TOKEN", SECRET)] {
        want.insert(k.into(), v.into());
    }
    // Exactly: nothing from the test process's own environment (CARGO_*, HOME...)
    // leaks in, since the library never reads it.
    assert_eq!(got, want);
}

#[tokio::test]
async fn binary_values_arrive_byte_for_byte() {
    let s = Scratch::new();
    let value = vec![0xff, 0xfe, 0x01, b' ', b'\n', 0x80, b'=', b'$', b'\\'];
    let plan = s
        .sh(r#"printf '%s' "$BIN" > "$OUT/bin""#)
        .var("BIN", Secret::new(value.clone()));
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));
    assert_eq!(std::fs::read(s.out("bin")).unwrap(), value);
}

#[tokio::test]
async fn a_value_with_nul_is_an_error_naming_the_variable() {
    let s = Scratch::new();
    let plan = s
        .sh(r#"touch "$OUT/ran""#)
        .var("GOOD", secret("fine"))
        .var("BAD", secret(&format!("{SECRET}\0tail")));
    let err = run(plan).await.unwrap_err();
    assert!(
        matches!(&err, Error::NulInValue { var } if var == "BAD"),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("BAD") && msg.contains("NUL"), "{msg}");
    assert!(!msg.contains(SECRET) && !format!("{err:?}").contains(SECRET));
    assert!(!s.out("ran").exists(), "the program must not run");
}

#[tokio::test]
async fn invalid_or_duplicate_names_are_errors() {
    let s = Scratch::new();
    let err = run(s.sh("true").var("A=B", secret("x"))).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidVarName { var } if var == "A=B"),
        "{err:?}"
    );
    let err = run(s.sh("true").var("X", secret("1")).var("X", secret("2")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateVar { var } if var == "X"),
        "{err:?}"
    );
    let err = run(s
        .sh("true")
        .var("X", secret("1"))
        .file("X", "x", secret("2")))
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::DuplicateVar { var } if var == "X"),
        "{err:?}"
    );
    assert!(s.runtime_leftovers().is_empty());
}
