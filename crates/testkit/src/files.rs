//! Credential files a test hands to keyway.

use std::path::{Path, PathBuf};

/// Writes `DIR/adc.json`: `authorized_user` credentials with made-up client
/// and refresh token (nothing real) whose token endpoint is `token_uri`.
pub fn authorized_user(dir: &Path, token_uri: &str) -> PathBuf {
    let path = dir.join("adc.json");
    let body = serde_json::json!({
        "type": "authorized_user",
        "client_id": "id.apps.googleusercontent.com",
        "client_secret": "not-a-real-secret",
        "refresh_token": "1//not-a-real-token",
        "token_uri": token_uri,
    });
    std::fs::write(&path, body.to_string())
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}
