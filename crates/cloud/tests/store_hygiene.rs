//! What the local cloud leaves on disk: a private data directory (0700, files
//! 0600) whose database reveals neither a payload's CRC32C nor the OAuth
//! client secret; and a store written before they were sealed (schema 1) is
//! sealed in place when opened, and still reads the same.

use keyway_cloud::cloud::Cloud;
use keyway_core::SystemClock;
use rusqlite::{Connection, params};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

const WORLD: &str = include_str!("worlds/store_hygiene.toml");

fn open(data: &Path) -> Cloud {
    let world = keyway_cloud::world::parse("world.toml", WORLD).unwrap();
    Cloud::open(
        data,
        &data.join("master.key"),
        Some(&world),
        Arc::new(SystemClock),
    )
    .unwrap()
    .0
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every byte SQLite keeps for the store.
fn raw(data: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for f in ["cloud.db", "cloud.db-wal"] {
        all.extend(std::fs::read(data.join(f)).unwrap_or_default());
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn client_secret(data: &Path) -> String {
    let adc: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            data.join("users/owner@example.com/gcloud/application_default_credentials.json"),
        )
        .unwrap(),
    )
    .unwrap();
    adc["client_secret"].as_str().unwrap().to_owned()
}

#[test]
fn the_data_directory_is_private_and_the_store_reveals_no_checksum_or_client_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let cloud = open(&data);
    cloud
        .write_credential_files("http://127.0.0.1:1/token")
        .unwrap();
    assert_eq!(mode(&data), 0o700);
    for f in ["cloud.db", "cloud.db-wal", "cloud.db-shm", "master.key"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    for d in [
        "users",
        "users/owner@example.com",
        "users/owner@example.com/gcloud",
    ] {
        assert_eq!(mode(&data.join(d)), 0o700, "{d}");
    }
    assert_eq!(
        mode(&data.join("users/owner@example.com/gcloud/application_default_credentials.json")),
        0o600
    );

    let crc = crc32c::crc32c(b"4711");
    let conn = Connection::open(data.join("cloud.db")).unwrap();
    let (ty, clear): (String, i64) = conn
        .query_row(
            "SELECT typeof(crc32c), count(*) FROM versions WHERE crc32c = ?1 OR typeof(crc32c) != 'integer'",
            params![crc as i64],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(
        (ty.as_str(), clear),
        ("blob", 1),
        "the checksum is stored in the clear"
    );
    let secret = client_secret(&data);
    assert!(secret.starts_with("GOCSPX-"));
    assert!(
        !contains(&raw(&data), secret.as_bytes()),
        "the OAuth client secret is in the database in the clear"
    );
    // And the cloud still knows both.
    let st = cloud.store.read();
    assert_eq!(st.projects["proj-h"].secrets["pin"].versions[0].crc32c, crc);
    drop(st);
    assert!(cloud.oauth_client_secret_matches(&secret));
}

#[test]
fn a_schema_1_store_is_sealed_in_place_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let crc = crc32c::crc32c(b"4711");
    let client_id = {
        let cloud = open(&data);
        cloud.oauth_client_id().to_owned()
    };
    // Turn it back into what schema 1 wrote: the checksum as an integer, the
    // settings as clear JSON, files 0644.
    let old_secret = "GOCSPX-schema-one-client-secret";
    {
        let conn = Connection::open(data.join("cloud.db")).unwrap();
        conn.execute("UPDATE versions SET crc32c = ?1", params![crc as i64])
            .unwrap();
        let settings = serde_json::json!({
            "token_lifetime_secs": 3599,
            "oauth_client_id": client_id,
            "oauth_client_secret": old_secret,
        });
        conn.execute(
            "UPDATE meta SET v = ?1 WHERE k = 'settings'",
            params![serde_json::to_vec(&settings).unwrap()],
        )
        .unwrap();
        conn.execute("UPDATE meta SET v = 1 WHERE k = 'schema'", [])
            .unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    for p in [&data, &data.join("cloud.db")] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert!(contains(&raw(&data), old_secret.as_bytes()));

    let (cloud, seeded) =
        Cloud::open(&data, &data.join("master.key"), None, Arc::new(SystemClock)).unwrap();
    assert!(!seeded);
    assert_eq!(cloud.oauth_client_id(), client_id);
    assert!(cloud.oauth_client_secret_matches(old_secret));
    assert_eq!(
        cloud.store.read().projects["proj-h"].secrets["pin"].versions[0].crc32c,
        crc
    );
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("cloud.db")), 0o600);
    drop(cloud);
    assert!(
        !contains(&raw(&data), old_secret.as_bytes()),
        "the client secret stayed in the clear after the upgrade"
    );
    let conn = Connection::open(data.join("cloud.db")).unwrap();
    let (schema, ints): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT CAST(v AS INTEGER) FROM meta WHERE k = 'schema'), (SELECT count(*) FROM versions WHERE typeof(crc32c) = 'integer')",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((schema, ints), (2, 0));
}
