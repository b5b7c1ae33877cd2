//! Secrets never leave their box: credentials files and servers hand out
//! distinctive marker strings, every success and error path runs with a TRACE
//! subscriber capturing all output, and no marker may appear in any error
//! message, error Debug, value Debug, or log line.
//!
//! This is a test binary of its own, with a single test: tracing caches each
//! log callsite's interest process-wide, and a callsite first hit by a parallel
//! test (with no subscriber) can race with this test installing its scoped
//! subscriber and stay silenced, which would let a leak go unseen.

#[allow(dead_code)]
#[path = "auth/support.rs"]
mod support;

use keyway_auth::{AuthContext, AuthError, GoogleCredentials, google_default};
use keyway_core::clock::ManualClock;
use keyway_core::{MemFs, vars};
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;
use tracing_subscriber::util::SubscriberInitExt;

const CLIENT_SECRET: &str = "MARKER-client-secret-q7Zp";
const REFRESH_TOKEN: &str = "MARKER-refresh-token-x9Lm";
const ACCESS_TOKEN: &str = "ya29.MARKER-access-token-k3Vb";
const EXT_SECRET: &str = "MARKER-external-secret-w2Hd";

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Checker {
    markers: Vec<String>,
    checked: usize,
}

impl Checker {
    fn clean(&mut self, what: &str, text: &str) {
        self.checked += 1;
        for m in &self.markers {
            assert!(
                !text.contains(m.as_str()),
                "{what} leaks a secret ({m}):\n{text}"
            );
        }
    }

    fn error(&mut self, what: &str, e: &AuthError) {
        self.clean(what, &e.to_string());
        self.clean(what, &format!("{e:?}"));
        self.clean(what, &format!("{e:#?}"));
        let mut src = std::error::Error::source(e);
        while let Some(s) = src {
            self.clean(what, &s.to_string());
            src = s.source();
        }
    }

    /// [`Checker::everything`] of the credentials in the file `content`.
    async fn file(&mut self, what: &str, content: String, clock: &ManualClock) {
        let creds = from_file(content, clock).await.unwrap();
        self.everything(what, &creds).await;
    }

    async fn everything(&mut self, what: &str, creds: &GoogleCredentials) {
        self.clean(
            what,
            &format!("{creds:?} {} {:?}", creds.source(), creds.attempts()),
        );
        match creds.access_token().await {
            Ok(t) => self.clean(what, &format!("{t:?}")),
            Err(e) => self.error(what, &e),
        }
        match creds.identity().await {
            Ok(i) => self.clean(what, &format!("{i:?}")),
            Err(e) => self.error(what, &e),
        }
        match creds.id_token("https://aud.example.com").await {
            Ok(t) => self.clean(what, &format!("{t:?}")),
            Err(e) => self.error(what, &e),
        }
    }
}

fn user_file(token_uri: &str) -> String {
    json!({
        "type": "authorized_user", "client_id": "123", "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN, "token_uri": token_uri,
    })
    .to_string()
}

fn quick(env: keyway_core::Env, fs: MemFs, clock: &ManualClock) -> AuthContext {
    ctx_quick(env, fs, clock, Duration::from_millis(800))
}

async fn from_file(content: String, clock: &ManualClock) -> Result<GoogleCredentials, AuthError> {
    let fs = MemFs::new().with("/c.json", content);
    let env = base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/c.json");
    google_default(&quick(env, fs, clock), &scopes(&[CLOUD_PLATFORM])).await
}

#[tokio::test]
async fn no_secret_reaches_errors_debug_or_logs() {
    let logs = Capture::default();
    let sink = logs.clone();
    let _guard = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish()
        .set_default();

    let pem = data("privatekey.pem");
    let key_lines: Vec<String> = pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 20)
        .map(str::to_owned)
        .collect();
    let oauth = FakeOAuth::start().await;
    *oauth.state.access_token.lock().unwrap() = ACCESS_TOKEN.into();
    *oauth.state.user_id_token_email.lock().unwrap() = Some("alice@example.com".into());
    let user_id_token = fake_jwt(
        &json!({"email": "alice@example.com", "aud": "123"}),
        "user-sig",
    );
    let sa_id_token = fake_jwt(
        &json!({"aud": "https://aud.example.com", "email": SA_EMAIL, "iat": T0}),
        "google-sig",
    );
    let md = FakeMetadata::start().await;
    *md.state.access_token.lock().unwrap() = ACCESS_TOKEN.into();

    let mut markers: Vec<String> = vec![
        CLIENT_SECRET,
        REFRESH_TOKEN,
        ACCESS_TOKEN,
        EXT_SECRET,
        "MARKER",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    markers.extend(key_lines);
    markers.extend([user_id_token, sa_id_token, md.state.id_token.clone()]);
    let mut ck = Checker {
        markers,
        checked: 0,
    };
    let clock = ManualClock::at_secs(T0);

    // Success: user credentials, service account, metadata server.
    oauth.expect_user("123", CLIENT_SECRET, REFRESH_TOKEN);
    ck.file("user success", user_file(&oauth.token_uri()), &clock)
        .await;
    oauth.expect_sa(SA_EMAIL, "1");
    ck.file("sa success", sa_file(&oauth.token_uri(), None), &clock)
        .await;
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let m = google_default(&quick(env, MemFs::new(), &clock), &[])
        .await
        .unwrap();
    ck.everything("metadata success", &m).await;
    assert_eq!(oauth.refusals(), Vec::<String>::new());

    // Token endpoint errors: refused grant, 5xx until giving up, odd 200 bodies, garbage, stalls, resets.
    oauth.expect_user("123", CLIENT_SECRET, "another");
    ck.file("invalid_grant", user_file(&oauth.token_uri()), &clock)
        .await;
    oauth.expect_user("123", CLIENT_SECRET, REFRESH_TOKEN);
    oauth.script(&[Reply::Status(500); 20]);
    ck.file("500s", user_file(&oauth.token_uri()), &clock).await;
    oauth.state.script.lock().unwrap().clear();
    for body in [
        json!({"unexpected": ACCESS_TOKEN, "refresh_token": REFRESH_TOKEN}),
        json!({"access_token": ACCESS_TOKEN, "expires_in": REFRESH_TOKEN, "token_type": "Bearer"}),
        json!({"access_token": ACCESS_TOKEN, "expires_in": -5, "token_type": "Bearer"}),
        json!({"id_token": 5, "access_token": ACCESS_TOKEN}),
    ] {
        *oauth.state.body_override.lock().unwrap() = Some(body.to_string());
        ck.file("odd body (user)", user_file(&oauth.token_uri()), &clock)
            .await;
        ck.file("odd body (sa)", sa_file(&oauth.token_uri(), None), &clock)
            .await;
    }
    *oauth.state.body_override.lock().unwrap() = None;
    oauth.script(&[Reply::Garbage]);
    ck.file("garbage", user_file(&oauth.token_uri()), &clock)
        .await;
    let (stall, _) = stall_server().await;
    ck.file("stall", user_file(&format!("http://{stall}/token")), &clock)
        .await;
    let (reset, _) = reset_server(usize::MAX, "").await;
    ck.file("reset", user_file(&format!("http://{reset}/token")), &clock)
        .await;
    oauth.expect_sa("someone-else@example.com", "1");
    ck.file("sa refused", sa_file(&oauth.token_uri(), None), &clock)
        .await;

    // Metadata errors: an impostor echoing the token without the header, garbage, 403.
    for reply in [Reply::NoFlavor, Reply::Garbage, Reply::Status(403)] {
        md.script(&[reply, reply]);
        let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
        ck.everything(
            "metadata error",
            &google_default(&quick(env, MemFs::new(), &clock), &[])
                .await
                .unwrap(),
        )
        .await;
    }

    // Bad files holding secrets: truncated JSON, a missing field, a bad key, unsupported types.
    let bad_files = [
        format!(r#"{{"type":"authorized_user","client_secret":"{CLIENT_SECRET}","refresh_token":"{REFRESH_TOKEN}","#),
        json!({"type": "authorized_user", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}).to_string(),
        json!({"type": "authorized_user", "client_id": ["x"], "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}).to_string(),
        json!({"type": "authorized_user", "client_id": "1", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN, "expiry": "soon", "token": ACCESS_TOKEN}).to_string(),
        json!({"type": "service_account", "client_email": SA_EMAIL, "private_key": format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", "TUFSS0VS")}).to_string(),
        json!({"type": "service_account", "client_email": SA_EMAIL, "private_key": "MARKER-not-a-pem"}).to_string(),
        json!({"type": "service_account", "client_email": SA_EMAIL, "private_key": pem.replace("MIIEpAIBAAKCAQEA4ej0p7bQ7L", "!!!!")}).to_string(),
        json!({"type": "external_account_authorized_user", "audience": "//iam.googleapis.com/locations/global/workforcePools/p/providers/x", "client_secret": EXT_SECRET, "refresh_token": REFRESH_TOKEN}).to_string(),
        json!({"type": "impersonated_service_account", "source_credentials": {"type": "authorized_user", "client_secret": CLIENT_SECRET, "refresh_token": REFRESH_TOKEN}}).to_string(),
        json!({"type": "MARKER-type-is-not-secret-but-stays-out", "client_secret": CLIENT_SECRET}).to_string(),
    ];
    for (i, f) in bad_files.into_iter().enumerate() {
        let err = from_file(f, &clock).await.unwrap_err();
        if i == 9 {
            // The type is shown (it is not a secret); check the rest without that marker.
            assert!(
                err.to_string().contains("unknown credentials type"),
                "{err}"
            );
            let text =
                format!("{err} {err:?}").replace("MARKER-type-is-not-secret-but-stays-out", "");
            ck.clean("unknown type", &text);
            continue;
        }
        ck.error(&format!("bad file {i}"), &err);
    }

    drop(_guard);
    let captured = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        captured.contains("using google credentials"),
        "the subscriber captured keyway's logs"
    );
    assert!(
        captured.contains("TRACE") || captured.contains("DEBUG"),
        "verbose levels were captured"
    );
    assert!(
        captured.contains("transient failure, retrying"),
        "retry logs were captured"
    );
    ck.clean("captured logs", &captured);
    assert!(ck.checked > 100, "checked {} texts", ck.checked);
}
