//! The condition-expression language: the CEL subset of Workload Identity
//! Federation attribute conditions and mappings
//! (`keyway_cloud::google::attributes`), parsed, checked and evaluated
//! against a fixed assertion (AWS GetCallerIdentity and OIDC claims) and a
//! fixed mapped identity.
//!
//! Beyond "does not panic":
//! - checking is the same decision as evaluating: an expression that does not
//!   validate fails to evaluate with the same error, and evaluation is
//!   deterministic;
//! - CEL's logic holds: `!(e)` negates a bool result and fails when `e` fails;
//!   `true || (e)` is true and `false && (e)` is false whatever `e` does;
//!   `(e) || true` is true and `(e) && false` false unless `e` ran out of its
//!   step budget;
//! - the work stays bounded: each evaluation, within its step budget, returns
//!   in well under a second (asserted with a wide margin: 3 s);
//! - no error echoes an assertion value (the claims hold a marker that the
//!   expression text does not contain).
#![no_main]

use keyway_cloud::google::attributes::{
    Mapped, condition_holds, map_attributes, validate_condition,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MARK: &str = "Kw7ClaimMarkQ";
const WORK_LIMIT: &str = "evaluation exceeds the work limit";
const TIME_LIMIT: Duration = Duration::from_secs(3);

fn context() -> &'static (Value, Mapped) {
    static CTX: OnceLock<(Value, Mapped)> = OnceLock::new();
    CTX.get_or_init(|| {
        let assertion = json!({
            "arn": "arn:aws:sts::123456789012:assumed-role/ci-deployer/i-0abc",
            "account": "123456789012",
            "userid": "AROAEXAMPLEID:i-0abc",
            "iss": "https://token.actions.githubusercontent.com",
            "sub": "repo:octo/app:ref:refs/heads/main",
            "aud": ["https://iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/gh"],
            "repository": "octo/app",
            "email_verified": true,
            "iat": 1_700_000_000,
            "ratio": 0.5,
            "groups": ["admins", "dev", format!("{MARK}-group")],
            "tok": format!("{MARK}(.[unclosed"),
            "nested": {"a": {"b": [1, 2, {"c": format!("x{MARK}y")}]}, "empty": {}, "null": null},
            "n": [0, -1, 9_007_199_254_740_993_i64, 1.5e300],
        });
        let mapped = Mapped {
            subject: "repo:octo/app:ref:refs/heads/main".into(),
            groups: vec!["admins".into(), "dev".into()],
            attributes: BTreeMap::from([
                ("repository".into(), "octo/app".into()),
                ("aws_role".into(), "arn:aws:sts::123456789012:assumed-role/ci-deployer".into()),
            ]),
        };
        (assertion, mapped)
    })
}

fn holds(expr: &str) -> Result<bool, keyway_cloud::google::attributes::ExprError> {
    let (assertion, mapped) = context();
    let t = Instant::now();
    let r = condition_holds(expr, assertion, mapped);
    let took = t.elapsed();
    assert!(took < TIME_LIMIT, "{took:?} to evaluate {expr:?} ({r:?})");
    if let Err(e) = &r
        && !expr.contains(MARK)
    {
        assert!(
            !e.to_string().contains(MARK),
            "an assertion value in the error: {e}"
        );
    }
    r
}

fn out_of_budget<T>(r: &Result<T, keyway_cloud::google::attributes::ExprError>) -> bool {
    r.as_ref().is_err_and(|e| e.message.starts_with(WORK_LIMIT))
}

fuzz_target!(|data: &[u8]| {
    let Ok(expr) = std::str::from_utf8(data) else {
        return;
    };
    let r = holds(expr);
    assert_eq!(holds(expr), r, "two evaluations of {expr:?} differ");
    if let Err(e) = validate_condition(expr) {
        assert_eq!(r, Err(e), "checking and evaluating {expr:?} disagree");
        return;
    }
    let wrapped = |w: String| validate_condition(&w).is_ok().then(|| (holds(&w), w));
    if let Some((n, w)) = wrapped(format!("!({expr})")) {
        match &r {
            Ok(b) => assert!(
                n == Ok(!b) || out_of_budget(&n),
                "{w:?} gave {n:?}, {expr:?} gave {r:?}"
            ),
            Err(_) => assert!(n.is_err(), "{w:?} gave {n:?}, {expr:?} gave {r:?}"),
        }
    }
    for (w, want, strict) in [
        (format!("true || ({expr})"), true, true),
        (format!("false && ({expr})"), false, true),
        (format!("({expr}) || true"), true, false),
        (format!("({expr}) && false"), false, false),
    ] {
        if let Some((got, w)) = wrapped(w) {
            assert!(
                got == Ok(want) || (!strict && out_of_budget(&got)),
                "{w:?} gave {got:?}"
            );
        }
    }
    // The same expression as an attribute mapping.
    let (assertion, _) = context();
    let mapping = BTreeMap::from([("google.subject".to_string(), expr.to_string())]);
    let t = Instant::now();
    let m = map_attributes(&mapping, assertion);
    assert!(
        t.elapsed() < TIME_LIMIT,
        "{:?} to map {expr:?}",
        t.elapsed()
    );
    if let Err(e) = m
        && !expr.contains(MARK)
    {
        assert!(
            !e.to_string().contains(MARK),
            "an assertion value in the error: {e}"
        );
    }
});
