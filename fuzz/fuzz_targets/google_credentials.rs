//! Google credential JSON files, as Application Default Credentials reads
//! them (`keyway_auth::google::check_credentials_file`): service_account,
//! authorized_user, external_account, impersonated_service_account and the
//! types keyway names but refuses.
//!
//! Beyond "does not panic": a file that parses is of the kind its `type`
//! says; and no error shows a secret. For the second, the secret fields
//! (`client_secret`, `refresh_token`, `private_key`, `token`, at any depth,
//! so in `source_credentials` too) get a marker appended and the file is
//! parsed again: neither the error's message nor its Debug form may contain
//! the marker.
#![no_main]

use keyway_auth::google::check_credentials_file;
use keyway_core::Env;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::path::Path;

const SECRET_FIELDS: [&str; 4] = ["client_secret", "refresh_token", "private_key", "token"];
const MARK: &str = "Kw7SecretMarkQ";

fn mark_secrets(v: &mut Value) -> bool {
    let mut marked = false;
    match v {
        Value::Object(m) => {
            for (k, v) in m.iter_mut() {
                match v {
                    Value::String(s) if SECRET_FIELDS.contains(&k.as_str()) => {
                        s.push_str(MARK);
                        marked = true;
                    }
                    _ => marked |= mark_secrets(v),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| marked |= mark_secrets(v)),
        _ => {}
    }
    marked
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("/fuzz/credentials.json");
    let env = Env::new();
    let doc: Option<Value> = serde_json::from_slice(data).ok();
    match check_credentials_file(path, data, &env) {
        Ok(kind) => {
            // CredentialKind displays as the `type` value of its files.
            let kind_name = kind.to_string();
            let ty = doc
                .as_ref()
                .and_then(|d| d.get("type"))
                .and_then(Value::as_str);
            assert_eq!(ty, Some(kind_name.as_str()), "parsed as {kind_name}");
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(
                shown.contains("/fuzz/credentials.json"),
                "the error does not name the file: {shown}"
            );
        }
    }
    let Some(mut doc) = doc else {
        return;
    };
    if data.windows(MARK.len()).any(|w| w == MARK.as_bytes()) || !mark_secrets(&mut doc) {
        return;
    }
    let bytes = serde_json::to_vec(&doc).expect("a JSON value serialises");
    if let Err(e) = check_credentials_file(path, &bytes, &env) {
        let (shown, debug) = (e.to_string(), format!("{e:?}"));
        assert!(
            !shown.contains(MARK),
            "a secret field reached the error: {shown}"
        );
        assert!(
            !debug.contains(MARK),
            "a secret field reached the error's Debug: {debug}"
        );
    }
});
