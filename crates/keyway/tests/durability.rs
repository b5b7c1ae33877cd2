//! `kill -9` of the local cloud during concurrent AddSecretVersion calls loses
//! no version that was acknowledged: every 200 answer names a version whose
//! payload is there, intact, after a restart.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_testkit::process;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

const WORLD: &str = include_str!("worlds/durability.toml");

fn start(data: &Path, world: &Path) -> (Child, Value) {
    process::start_cloud(
        Path::new(env!("CARGO_BIN_EXE_keyway")),
        world,
        data,
        Stdio::null(),
    )
}

async fn owner_token(http: &reqwest::Client, data: &Path) -> String {
    process::refresh_user_token(http, data, "owner@example.com").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_dash_nine_loses_no_acknowledged_version() {
    let dir = tempfile::tempdir().unwrap();
    let world = dir.path().join("world.toml");
    std::fs::write(&world, WORLD).unwrap();
    let data = dir.path().join("data");
    let (mut child, ep) = start(&data, &world);
    let http = reqwest::Client::new();
    let token = owner_token(&http, &data).await;
    let add = format!(
        "{}/v1/projects/durable-proj/secrets/counter:addVersion",
        ep["google"].as_str().unwrap()
    );

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(u64, String)>();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, add, token, tx) = (http.clone(), add.clone(), token.clone(), tx.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0.. {
                let payload = format!("writer-{w}-item-{i}");
                let r = http
                    .post(&add)
                    .bearer_auth(&token)
                    .json(&json!({"payload": {"data": STANDARD.encode(&payload)}}))
                    .send()
                    .await;
                let Ok(r) = r else { return };
                if r.status() != 200 {
                    return;
                }
                let Ok(v) = r.json::<Value>().await else {
                    return;
                };
                let n: u64 = v["name"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let _ = tx.send((n, payload));
            }
        }));
    }
    drop(tx);
    // Let the writers get going, then pull the plug without warning.
    tokio::time::sleep(Duration::from_millis(700)).await;
    process::signal_and_wait(&mut child, libc::SIGKILL);
    for t in tasks {
        let _ = t.await;
    }
    let mut acked = Vec::new();
    while let Some(a) = rx.recv().await {
        acked.push(a);
    }
    assert!(
        acked.len() >= 10,
        "only {} writes were acknowledged before the kill; the test proves little",
        acked.len()
    );

    let (mut child, ep) = start(&data, &world);
    let base = ep["google"].as_str().unwrap().to_owned();
    let token = owner_token(&http, &data).await;
    for (n, payload) in &acked {
        let r = http
            .get(format!(
                "{base}/v1/projects/durable-proj/secrets/counter/versions/{n}:access"
            ))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged version {n} is missing after kill -9"
        );
        let v: Value = r.json().await.unwrap();
        let got = STANDARD
            .decode(v["payload"]["data"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            got,
            payload.as_bytes(),
            "version {n} came back with other content"
        );
    }
    // Numbering has no gaps: every version up to the highest acknowledged one exists.
    let max = acked.iter().map(|(n, _)| *n).max().unwrap();
    let list: Value = http
        .get(format!(
            "{base}/v1/projects/durable-proj/secrets/counter/versions?pageSize=25000"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(list["totalSize"].as_u64().unwrap() >= max);
    process::stop(&mut child);
}
