//! Application Default Credentials: which source answers, in which order, what
//! the attempts say, and which errors stop the chain.

use crate::support::*;
use keyway_auth::{Absent, AuthError, CredentialKind, Outcome, Source, SourceKind, google_default};
use keyway_core::clock::ManualClock;
use keyway_core::{Env, MemFs, vars};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The attempts of a chain that found no credentials (any other error fails the test).
fn not_configured(err: &AuthError) -> &[keyway_auth::Attempt] {
    let AuthError::NotConfigured { attempts } = err else {
        panic!("{err}")
    };
    attempts
}

fn outcomes(attempts: &[keyway_auth::Attempt]) -> Vec<(SourceKind, String)> {
    attempts
        .iter()
        .map(|a| (a.source, a.outcome.to_string()))
        .collect()
}

/// The source of the credential file GOOGLE_APPLICATION_CREDENTIALS names
/// (or, `gcloud`, of gcloud's well-known file), not an impersonation chain.
fn file_source(gcloud: bool, path: impl AsRef<std::path::Path>, kind: CredentialKind) -> Source {
    let (path, chain) = (path.as_ref().to_owned(), None);
    match gcloud {
        true => Source::GcloudFile { path, kind, chain },
        false => Source::EnvFile { path, kind, chain },
    }
}

fn env_file(path: impl AsRef<std::path::Path>, kind: CredentialKind) -> Source {
    file_source(false, path, kind)
}

fn gcloud_file(path: impl AsRef<std::path::Path>, kind: CredentialKind) -> Source {
    file_source(true, path, kind)
}

#[tokio::test]
async fn env_file_beats_gcloud_file_beats_metadata() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_sa(SA_EMAIL, "1");
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new()
        .with("/creds/sa.json", sa_file(&oauth.token_uri(), None))
        .with(GCLOUD_FILE, data("authorized_user_cloud_sdk.json"));
    let env = base_env()
        .with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/creds/sa.json")
        .with(vars::GCE_METADATA_HOST, &md.host());
    let creds = adc_for(env, fs, &clock, &[CLOUD_PLATFORM]).await.unwrap();

    assert_eq!(
        creds.source(),
        &env_file("/creds/sa.json", CredentialKind::ServiceAccount)
    );
    assert_eq!(
        creds.source().to_string(),
        "service_account credentials from /creds/sa.json (GOOGLE_APPLICATION_CREDENTIALS)"
    );
    assert_eq!(
        outcomes(creds.attempts()),
        vec![(SourceKind::EnvFile, "answered".into())]
    );
    let tok = creds.access_token().await.unwrap();
    assert_eq!(tok.token.expose(), "ya29.oauth-token");
    assert_eq!(oauth.refusals(), Vec::<String>::new());
    // The metadata server was never asked anything.
    assert_eq!(md.state.pings.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn gcloud_file_answers_with_user_credentials_and_beats_metadata() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user(
        "764086051850-6qr4p6gpi6hn506pt8ejuq83di341hur.apps.googleusercontent.com",
        "secret",
        "alabalaportocala",
    );
    *oauth.state.user_scope.lock().unwrap() = Some(format!("openid {CLOUD_PLATFORM}"));
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, data("authorized_user_cloud_sdk.json"));
    // The file has no token_uri: gcloud's OAuth2 override decides where to refresh.
    let env = base_env()
        .with(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2, &oauth.base())
        .with(vars::GCE_METADATA_HOST, &md.host());
    let creds = adc_for(env, fs, &clock, &[CLOUD_PLATFORM]).await.unwrap();

    assert_eq!(
        creds.source(),
        &gcloud_file(GCLOUD_FILE, CredentialKind::AuthorizedUser)
    );
    assert_eq!(
        creds.source().to_string(),
        format!("authorized_user credentials from {GCLOUD_FILE} (gcloud's well-known file)")
    );
    assert_eq!(
        outcomes(creds.attempts()),
        vec![
            (
                SourceKind::EnvFile,
                "not configured: GOOGLE_APPLICATION_CREDENTIALS is not set".into()
            ),
            (SourceKind::GcloudFile, "answered".into()),
        ]
    );
    let tok = creds.access_token().await.unwrap();
    assert_eq!(tok.token.expose(), "ya29.oauth-token");
    assert_eq!(tok.expires_at, T0 + 3599);
    assert_eq!(tok.scopes, Some(scopes(&["openid", CLOUD_PLATFORM])));
    assert_eq!(oauth.hits(), 1);
    assert_eq!(md.state.pings.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn cloudsdk_config_moves_the_gcloud_file() {
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new()
        .with(
            "/etc/gcloud-alt/application_default_credentials.json",
            data("authorized_user.json"),
        )
        .with(GCLOUD_FILE, "{ not even json");
    let env = base_env().with(vars::CLOUDSDK_CONFIG, "/etc/gcloud-alt");
    let creds = adc(env, fs, &clock).await.unwrap();
    assert_eq!(
        creds.source(),
        &gcloud_file(
            "/etc/gcloud-alt/application_default_credentials.json",
            CredentialKind::AuthorizedUser
        )
    );
}

#[tokio::test]
async fn metadata_server_answers_via_gce_metadata_host() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let env = Env::new()
        .with(vars::HOME, HOME)
        .with(vars::GCE_METADATA_HOST, &md.host());
    let creds = adc_for(env, MemFs::new(), &clock, &[CLOUD_PLATFORM, "openid"])
        .await
        .unwrap();

    assert_eq!(
        creds.source(),
        &Source::MetadataServer {
            host: md.host(),
            email: Some(md.state.email.clone())
        }
    );
    assert_eq!(
        creds.source().to_string(),
        format!(
            "metadata server at {}, service account vm-sa@proj.iam.gserviceaccount.com",
            md.host()
        )
    );
    assert_eq!(
        outcomes(creds.attempts()),
        vec![
            (
                SourceKind::EnvFile,
                "not configured: GOOGLE_APPLICATION_CREDENTIALS is not set".into()
            ),
            (
                SourceKind::GcloudFile,
                format!("not configured: no file at {GCLOUD_FILE}")
            ),
            (SourceKind::MetadataServer, "answered".into()),
        ]
    );
    let tok = creds.access_token().await.unwrap();
    assert_eq!(tok.token.expose(), "ya29.metadata-token");
    assert_eq!(tok.expires_at, T0 + 3599);
    // Scopes are sent as google-auth sends them: one parameter, comma-joined.
    let q = md.state.last_token_query.lock().unwrap().clone().unwrap();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    assert_eq!(
        pairs,
        vec![("scopes".to_owned(), format!("{CLOUD_PLATFORM},openid"))]
    );

    let id = creds.identity().await.unwrap();
    assert_eq!(
        id.email.as_deref(),
        Some("vm-sa@proj.iam.gserviceaccount.com")
    );
    assert_eq!(id.scopes, Some(md.state.scopes.clone()));
    assert_eq!(id.expires_at, Some(T0 + 3599));
    assert_eq!(md.token_hits(), 1, "identity() reuses the cached token");
}

#[tokio::test]
async fn legacy_gce_metadata_root_and_scheme_prefix_work() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_ROOT, &format!("http://{}/", md.host()));
    let creds = adc(env, MemFs::new(), &clock).await.unwrap();
    assert_eq!(creds.source().kind(), SourceKind::MetadataServer);
    creds.access_token().await.unwrap();
    assert_eq!(
        *md.state.last_token_query.lock().unwrap(),
        None,
        "no scopes requested, no query"
    );
}

#[tokio::test]
async fn probe_finds_a_metadata_server_at_gce_metadata_ip() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let env = Env::new()
        .with(vars::HOME, HOME)
        .with(vars::GCE_METADATA_IP, &md.host());
    let creds = adc(env, MemFs::new(), &clock).await.unwrap();
    assert_eq!(
        creds.source(),
        &Source::MetadataServer {
            host: md.host(),
            email: Some(md.state.email.clone())
        }
    );
    assert_eq!(md.state.pings.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_stalling_probe_gives_up_quickly() {
    let (addr, _) = stall_server().await;
    let clock = ManualClock::at_secs(T0);
    let env = Env::new()
        .with(vars::HOME, HOME)
        .with(vars::GCE_METADATA_IP, &addr.to_string());
    let started = Instant::now();
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "probe took {took:?}");
    let attempts = not_configured(&err);
    assert_eq!(
        attempts[2].outcome.to_string(),
        format!(
            "not configured: no metadata server answered at {addr} (from GCE_METADATA_IP) within 500ms (not on Google Cloud?)"
        )
    );
    assert!(
        matches!(
            &attempts[2].outcome,
            Outcome::NotConfigured(Absent::NoMetadataServer {
                var: Some("GCE_METADATA_IP"),
                ..
            })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn nothing_configured_lists_all_three_attempts() {
    let nobody = closed_port().await;
    let clock = ManualClock::at_secs(T0);
    let env = Env::new()
        .with(vars::HOME, HOME)
        .with(vars::GCE_METADATA_IP, &nobody.to_string());
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    let attempts = not_configured(&err);
    assert_eq!(
        outcomes(attempts),
        vec![
            (
                SourceKind::EnvFile,
                "not configured: GOOGLE_APPLICATION_CREDENTIALS is not set".into()
            ),
            (
                SourceKind::GcloudFile,
                format!("not configured: no file at {GCLOUD_FILE}")
            ),
            (
                SourceKind::MetadataServer,
                format!(
                    "not configured: no metadata server answered at {nobody} (from GCE_METADATA_IP) within 500ms (not on Google Cloud?)"
                )
            ),
        ]
    );
    let msg = err.to_string();
    assert!(msg.starts_with("finding google credentials: no source answered (GOOGLE_APPLICATION_CREDENTIALS: not configured"), "{msg}");
    assert!(
        msg.contains(GCLOUD_FILE) && msg.contains("metadata server: not configured"),
        "{msg}"
    );
    assert!(!err.is_transient());
}

#[tokio::test]
async fn no_gce_check_skips_the_metadata_server() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    // Even with a metadata server at GCE_METADATA_IP, NO_GCE_CHECK means: do not look.
    let env = Env::new()
        .with(vars::HOME, HOME)
        .with(vars::NO_GCE_CHECK, "1")
        .with(vars::GCE_METADATA_IP, &md.host())
        .with(vars::GOOGLE_APPLICATION_CREDENTIALS, "");
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    let attempts = not_configured(&err);
    assert_eq!(
        outcomes(attempts),
        vec![
            (
                SourceKind::EnvFile,
                "not configured: GOOGLE_APPLICATION_CREDENTIALS is set but empty".into()
            ),
            (
                SourceKind::GcloudFile,
                format!("not configured: no file at {GCLOUD_FILE}")
            ),
            (
                SourceKind::MetadataServer,
                "not configured: NO_GCE_CHECK is set, so no metadata server was looked for".into()
            ),
        ]
    );
    assert_eq!(md.state.pings.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_explicit_metadata_host_that_is_down_is_a_failure_not_silence() {
    let nobody = closed_port().await;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &nobody.to_string());
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    let attempts = not_configured(&err);
    let Outcome::Failed(why) = &attempts[2].outcome else {
        panic!("{:?}", attempts[2])
    };
    assert!(why.to_string().starts_with(&format!("GCE_METADATA_HOST is {nobody}, but checking for a metadata server: could not reach http://{nobody}/")), "{why}");
    assert!(
        matches!(
            **why,
            AuthError::MetadataUnreachable {
                var: "GCE_METADATA_HOST",
                ..
            }
        ),
        "{why}"
    );
    assert!(
        err.to_string()
            .contains("metadata server: failed: GCE_METADATA_HOST is"),
        "{err}"
    );
}

#[tokio::test]
async fn an_explicit_host_that_is_not_a_metadata_server_is_refused() {
    let md = FakeMetadata::start().await;
    *md.state.ping_flavor.lock().unwrap() = false;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("without the header Metadata-Flavor: Google, so it is not a metadata server"),
        "{msg}"
    );
    assert_eq!(
        md.state.pings.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "not retried"
    );
}

#[tokio::test]
async fn a_bad_gce_metadata_host_value_is_an_error() {
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, "127.0.0.1:80/computeMetadata/v1");
    let err = adc(env, MemFs::new(), &clock).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::InvalidEnv {
                var: "GCE_METADATA_HOST",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_bad_env_file_stops_the_chain() {
    let md = FakeMetadata::start().await;
    let cases: Vec<(&str, Option<String>, Option<&str>, &str)> = vec![
        ("/creds/missing.json", None, None, "the file does not exist"),
        ("/creds/bad.json", Some("{\"type\": \"service_account\",".into()), None, "not valid JSON"),
        ("/creds/array.json", Some("[1, 2]".into()), None, "expected a JSON object"),
        ("/creds/notype.json", Some("{}".into()), Some("type"), "missing field \"type\""),
        (
            "/creds/nosecret.json",
            Some(r#"{"type":"authorized_user","client_id":"1","refresh_token":"r"}"#.into()),
            Some("client_secret"),
            "missing field \"client_secret\"",
        ),
        (
            "/creds/noemail.json",
            Some(r#"{"type":"service_account","private_key":"x"}"#.into()),
            Some("client_email"),
            "missing field \"client_email\"",
        ),
        (
            "/creds/badkey.json",
            Some(r#"{"type":"service_account","client_email":"a@b","private_key":"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}"#.into()),
            Some("private_key"),
            "field \"private_key\": not an RSA PKCS#8 private key",
        ),
        ("/creds/weird.json", Some(r#"{"type":"kerberos"}"#.into()), Some("type"), "unknown credentials type \"kerberos\""),
    ];
    for (path, content, want_field, want_reason) in cases {
        let mut fs = MemFs::new().with(GCLOUD_FILE, data("authorized_user.json"));
        if let Some(c) = content {
            fs = fs.with(path, c);
        }
        let env = base_env()
            .with(vars::GOOGLE_APPLICATION_CREDENTIALS, path)
            .with(vars::GCE_METADATA_HOST, &md.host());
        let clock = ManualClock::at_secs(T0);
        let err = adc(env, fs, &clock).await.unwrap_err();
        let msg = err.to_string();
        let AuthError::InvalidConfig {
            path: p,
            origin,
            field,
            problem,
            ..
        } = &err
        else {
            panic!("{path}: {msg}")
        };
        assert_eq!(p, &PathBuf::from(path));
        assert_eq!(*origin, SourceKind::EnvFile);
        assert_eq!(*field, want_field, "{path}");
        let reason = problem.to_string();
        assert!(reason.contains(want_reason), "{path}: {reason}");
        assert!(
            msg.starts_with(&format!(
                "reading google credentials from {path} (GOOGLE_APPLICATION_CREDENTIALS): "
            )),
            "{msg}"
        );
    }
    assert_eq!(
        md.state.pings.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the chain stopped at the bad file"
    );
}

#[tokio::test]
async fn a_bad_gcloud_file_stops_the_chain_too() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, "{\"type\":\"authorized_user\"}");
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let err = adc(env, fs, &clock).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "reading google credentials from {GCLOUD_FILE} (gcloud's well-known file): missing field \"client_id\""
        )
    );
    assert_eq!(md.state.pings.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test]
async fn unsupported_types_say_so() {
    let cases = [(
        "external_account_authorized_user",
        data("external_account_authorized_user.json"),
        "workforce pool audience",
    )];
    for (kind, content, detail) in cases {
        for via_env in [true, false] {
            let (path, env) = if via_env {
                (
                    "/creds/x.json",
                    base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/creds/x.json"),
                )
            } else {
                (GCLOUD_FILE, base_env())
            };
            let fs = MemFs::new().with(path, content.clone());
            let clock = ManualClock::at_secs(T0);
            let err = adc(env, fs, &clock).await.unwrap_err();
            let msg = err.to_string();
            let AuthError::Unsupported {
                path: p, kind: k, ..
            } = &err
            else {
                panic!("{msg}")
            };
            assert_eq!((p.to_str().unwrap(), k.as_str()), (path, kind));
            assert!(
                msg.contains(&format!("{kind} credentials are not supported yet (")),
                "{msg}"
            );
            assert!(msg.contains(detail), "{msg}");
            assert!(
                msg.ends_with("coming with workload identity federation)"),
                "{msg}"
            );
            assert!(msg.contains(path), "{msg}");
        }
    }
}

#[tokio::test]
async fn real_files_are_read_through_the_fs_seam() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.json");
    std::fs::write(&path, data("authorized_user.json")).unwrap();
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, path.to_str().unwrap());
    let mut c = ctx(env, MemFs::new(), &clock);
    c.fs = std::sync::Arc::new(keyway_core::RealFs);
    let creds = google_default(&c, &[]).await.unwrap();
    assert_eq!(
        creds.source(),
        &env_file(&path, CredentialKind::AuthorizedUser)
    );
}

#[tokio::test]
async fn a_metadata_server_that_will_not_name_its_account_is_still_used() {
    let md = FakeMetadata::start().await;
    *md.state.email_stalls.lock().unwrap() = true;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let started = Instant::now();
    let creds = adc(env, MemFs::new(), &clock).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        creds.source(),
        &Source::MetadataServer {
            host: md.host(),
            email: None
        }
    );
    assert_eq!(
        creds.source().to_string(),
        format!("metadata server at {}, default service account", md.host())
    );
    assert_eq!(
        creds.access_token().await.unwrap().token.expose(),
        "ya29.metadata-token"
    );
}
