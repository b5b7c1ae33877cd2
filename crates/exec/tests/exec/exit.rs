//! Exit codes: passthrough, death by signal, and programs that cannot start.

use std::os::unix::fs::PermissionsExt;

use keyway_exec::{ChildExit, Error, Plan, run};

use crate::support::{Scratch, secret};

#[tokio::test]
async fn exit_codes_pass_through() {
    let s = Scratch::new();
    for code in [0, 3, 255] {
        let exit = run(s.sh(&format!("exit {code}"))).await.unwrap();
        assert_eq!(exit, ChildExit::Exited(code));
        assert_eq!(i32::from(exit.code()), code);
    }
}

#[tokio::test]
async fn death_by_signal_is_128_plus_n() {
    let s = Scratch::new();
    for (sig, name) in [
        (libc::SIGSEGV, "SEGV"),
        (libc::SIGKILL, "KILL"),
        (libc::SIGTERM, "TERM"),
    ] {
        let exit = run(s.sh(&format!("kill -{name} $$"))).await.unwrap();
        assert_eq!(exit, ChildExit::Signaled(sig));
        assert_eq!(i32::from(exit.code()), 128 + sig);
    }
}

#[tokio::test]
async fn a_missing_program_is_127_and_named() {
    let s = Scratch::new();
    for program in ["keyway-no-such-program-xyz", "/nonexistent/keyway-app"] {
        let err = run(Plan::new(program, s.env())).await.unwrap_err();
        assert!(matches!(err, Error::ProgramNotFound { .. }), "{err:?}");
        assert_eq!(err.exit_code(), 127);
        let msg = err.to_string();
        assert!(msg.contains(program) && msg.contains("not found"), "{msg}");
    }
}

#[tokio::test]
async fn the_program_is_searched_on_the_childs_path_not_keyways() {
    let s = Scratch::new();
    let bin = s.out("bin");
    std::fs::create_dir(&bin).unwrap();
    let tool = bin.join("keyway-test-tool");
    std::fs::write(&tool, "#!/bin/sh\nexit 7\n").unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    let env = s.env().with("PATH", bin.to_str().unwrap());
    assert_eq!(
        run(Plan::new("keyway-test-tool", env)).await.unwrap(),
        ChildExit::Exited(7)
    );
    // With the default PATH it is not found.
    let err = run(Plan::new("keyway-test-tool", s.env()))
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 127);
}

#[tokio::test]
async fn a_file_that_cannot_be_executed_is_126() {
    let s = Scratch::new();
    let data = s.out("data.txt");
    std::fs::write(&data, "not a program").unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Executable bit but no #! and not a binary: exec says ENOEXEC.
    let garbage = s.out("garbage");
    std::fs::write(&garbage, [0x7f, 0x00, 0x01, 0x02]).unwrap();
    std::fs::set_permissions(&garbage, std::fs::Permissions::from_mode(0o755)).unwrap();
    for program in [data.as_path(), garbage.as_path(), s.out.path()] {
        let err = run(Plan::new(program, s.env())).await.unwrap_err();
        assert!(
            matches!(err, Error::NotExecutable { .. }),
            "{program:?}: {err:?}"
        );
        assert_eq!(err.exit_code(), 126);
        assert!(err.to_string().contains(program.to_str().unwrap()));
    }
}

#[tokio::test]
async fn argv_is_passed_exactly_without_a_shell() {
    let s = Scratch::new();
    let args = [
        "a b",
        "$HOME",
        "*",
        "",
        "line\nbreak",
        "'quoted'",
        ";exit 9",
    ];
    let plan = Plan::new("/bin/sh", s.env())
        .args(["-c", r#"printf '%s\0' "$0" "$@" > "$OUT/argv""#, "zero"])
        .args(args);
    assert_eq!(run(plan).await.unwrap(), ChildExit::Exited(0));
    let got = s.read("argv");
    let got: Vec<&str> = got.strip_suffix('\0').unwrap().split('\0').collect();
    let mut want = vec!["zero"];
    want.extend(args);
    assert_eq!(got, want);
}

#[tokio::test]
async fn nul_in_an_argument_is_an_error_and_nothing_runs() {
    let s = Scratch::new();
    let plan = s
        .sh("touch \"$OUT/ran\"")
        .args(["bad\0arg"])
        .var("V", secret("x"));
    let err = run(plan).await.unwrap_err();
    assert!(matches!(err, Error::NulInArgument { index: 4 }), "{err:?}");
    assert!(!s.out("ran").exists());
}
