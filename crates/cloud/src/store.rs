//! The store: the only module that speaks SQL.
//!
//! Reads are served from memory (a `RwLock`ed [`State`] loaded at start), so the
//! hot path (`:access`) never touches SQLite. Every write goes through
//! [`Store::write`]: under one writer mutex, the caller computes a list of
//! [`Change`]s from the current state, the changes are committed to SQLite in one
//! transaction (WAL, `synchronous=FULL`), and only then applied to memory. A
//! response is sent after the commit, so an acknowledged write survives `kill -9`.
//!
//! Secret payloads, their CRC32C checksums (a checksum narrows down what a
//! short payload can be), the cloud's own signing keys and its settings (the
//! OAuth client secret) are sealed with the master key before they reach
//! SQLite; the database file alone reveals none of them. The database, its
//! WAL and shared-memory files are 0600, and deleted content is overwritten
//! (`secure_delete`).
//!
//! Schema 1 (before 2026-12) kept checksums and settings in the clear; such a
//! store is sealed in place when it is first opened (schema 2).

use crate::crypto::{CryptoError, MasterKey};
use keyway_wire::google::iam::Policy;
use keyway_wire::google::secretmanager::VersionState;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock, RwLockReadGuard};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the store at {path}: {source}")]
    Sql {
        path: String,
        source: rusqlite::Error,
    },
    #[error("the store at {path} holds a document that does not parse ({kind} {key}): {reason}")]
    Corrupt {
        path: String,
        kind: String,
        key: String,
        reason: String,
    },
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    #[error("the store at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the store at {path} was created by a newer keyway (schema {found}, this build knows {known})"
    )]
    Schema {
        path: String,
        found: i64,
        known: i64,
    },
}

const SCHEMA: i64 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Project {
    pub id: String,
    pub number: u64,
    pub create_ms: i64,
    pub iam: Policy,
    #[serde(skip)]
    pub secrets: BTreeMap<String, SecretEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub email: String,
    pub client_id: String,
    /// SHA-256 (hex) of the refresh token; the token itself lives only in the
    /// user's ADC file.
    pub refresh_token_sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccountKey {
    pub id: String,
    /// PKCS#1 RSAPublicKey, base64.
    pub public_der_b64: String,
    pub create_ms: i64,
    #[serde(default)]
    pub disabled: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceAccount {
    pub email: String,
    pub project: String,
    pub unique_id: String,
    pub display_name: String,
    #[serde(default)]
    pub keys: Vec<ServiceAccountKey>,
    #[serde(default)]
    pub iam: Policy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Instance {
    pub project: String,
    pub zone: String,
    pub name: String,
    pub id: u64,
    pub create_ms: i64,
    pub status: String,
    pub machine_type: String,
    /// Email of the attached service account, if any.
    pub service_account: Option<String>,
    pub scopes: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub fingerprint: String,
    /// When it was last started and stopped (Compute's lastStartTimestamp / lastStopTimestamp).
    #[serde(default)]
    pub last_start_ms: Option<i64>,
    #[serde(default)]
    pub last_stop_ms: Option<i64>,
}

/// A workload identity pool (IAM v1 `WorkloadIdentityPool`), under a project.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WiPool {
    /// The project id.
    pub project: String,
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub disabled: bool,
    pub create_ms: i64,
}

impl WiPool {
    pub fn key(project: &str, pool: &str) -> String {
        format!("{project}/{pool}")
    }
}

/// What a provider trusts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum WiTrust {
    /// AWS: callers of the account, proven by a signed GetCallerIdentity request.
    Aws { account_id: String },
    /// OpenID Connect: ID tokens of `issuer_uri`, checked with `jwks_json` (or,
    /// when absent and the issuer is the local cloud's, its own signing key).
    Oidc {
        issuer_uri: String,
        #[serde(default)]
        allowed_audiences: Vec<String>,
        #[serde(default)]
        jwks_json: Option<String>,
    },
}

/// A workload identity pool provider (IAM v1 `WorkloadIdentityPoolProvider`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WiProvider {
    pub project: String,
    pub pool: String,
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub disabled: bool,
    pub trust: WiTrust,
    /// `google.subject`, `google.groups`, `attribute.NAME` → CEL expression.
    #[serde(default)]
    pub attribute_mapping: BTreeMap<String, String>,
    #[serde(default)]
    pub attribute_condition: Option<String>,
}

impl WiProvider {
    pub fn key(project: &str, pool: &str, provider: &str) -> String {
        format!("{project}/{pool}/{provider}")
    }
}

impl Instance {
    pub fn key(project: &str, zone: &str, name: &str) -> String {
        format!("{project}/{zone}/{name}")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretMeta {
    pub id: String,
    pub create_ms: i64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub version_aliases: BTreeMap<String, String>,
    pub replication: serde_json::Value,
    /// Bumped on every update; the etag is derived from it.
    pub revision: u64,
    #[serde(default)]
    pub iam: Policy,
}

#[derive(Debug, Clone)]
pub struct Version {
    pub number: u64,
    pub create_ms: i64,
    pub state: VersionState,
    pub destroy_ms: Option<i64>,
    pub crc32c: u32,
    pub client_checksum: bool,
    /// nonce || ciphertext || tag; empty once destroyed.
    pub sealed: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct SecretEntry {
    pub meta: SecretMeta,
    /// Index `n - 1` holds version `n`.
    pub versions: Vec<Version>,
}

/// Everything the cloud knows, in memory.
#[derive(Debug, Default)]
pub struct State {
    pub projects: BTreeMap<String, Project>,
    pub users: BTreeMap<String, User>,
    pub service_accounts: BTreeMap<String, ServiceAccount>,
    pub instances: BTreeMap<String, Instance>,
    /// The AWS half (accounts, IAM, compute, Secrets Manager).
    pub aws: crate::aws::model::AwsState,
    /// Workload identity pools by `PROJECT/POOL`.
    pub wi_pools: BTreeMap<String, WiPool>,
    /// Their providers by `PROJECT/POOL/PROVIDER`.
    pub wi_providers: BTreeMap<String, WiProvider>,
}

impl State {
    /// A project by id or by number.
    pub fn project(&self, id_or_number: &str) -> Option<&Project> {
        if let Some(p) = self.projects.get(id_or_number) {
            return Some(p);
        }
        let n: u64 = id_or_number.parse().ok()?;
        self.projects.values().find(|p| p.number == n)
    }
}

/// One durable modification.
#[derive(Debug, Clone)]
pub enum Change {
    PutProject(Project),
    PutUser(User),
    PutServiceAccount(ServiceAccount),
    PutInstance(Instance),
    PutWiPool(WiPool),
    PutWiProvider(WiProvider),
    /// Insert or replace a secret's metadata (its versions are kept).
    PutSecret {
        project: String,
        meta: SecretMeta,
    },
    DeleteSecret {
        project: String,
        secret: String,
    },
    PutVersion {
        project: String,
        secret: String,
        version: Version,
    },
    /// Insert or replace an AWS document.
    PutAws(crate::aws::model::AwsDoc),
    /// Delete an AWS document (`kind` as [`crate::aws::model::AwsDoc::kind`]).
    DeleteAws {
        kind: &'static str,
        key: String,
    },
}

pub struct Store {
    path: PathBuf,
    conn: Mutex<Connection>,
    state: RwLock<State>,
    pub master: MasterKey,
}

fn state_name(s: VersionState) -> &'static str {
    s.name()
}

impl Store {
    /// Opens (creating if needed) `dir/cloud.db`, with the master key at `key_path`.
    pub fn open(dir: &Path, key_path: &Path) -> Result<Store, StoreError> {
        let path = dir.join("cloud.db");
        let p = path.display().to_string();
        let sql = |source| StoreError::Sql {
            path: p.clone(),
            source,
        };
        let existed = path.exists();
        let io = |source: std::io::Error| StoreError::Io {
            path: p.clone(),
            source,
        };
        if existed {
            // An older keyway left them 0644.
            for suffix in ["", "-wal", "-shm"] {
                crate::datadir::private_file(&dir.join(format!("cloud.db{suffix}"))).map_err(io)?;
            }
        } else {
            // SQLite gives the WAL and shared-memory files the database's mode.
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
        }
        let conn = Connection::open(&path).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             PRAGMA secure_delete=ON;
             CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS docs (kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, key));
             CREATE TABLE IF NOT EXISTS versions (
                project TEXT NOT NULL, secret TEXT NOT NULL, number INTEGER NOT NULL,
                create_ms INTEGER NOT NULL, state TEXT NOT NULL, destroy_ms INTEGER,
                crc32c BLOB NOT NULL, client_checksum INTEGER NOT NULL, sealed BLOB NOT NULL,
                PRIMARY KEY (project, secret, number));",
        )
        .map_err(sql)?;
        let schema: Option<i64> = conn
            .query_row(
                "SELECT CAST(v AS INTEGER) FROM meta WHERE k='schema'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        match schema {
            Some(s) if s > SCHEMA => {
                return Err(StoreError::Schema {
                    path: p,
                    found: s,
                    known: SCHEMA,
                });
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO meta (k, v) VALUES ('schema', ?1)",
                    params![SCHEMA],
                )
                .map_err(sql)?;
            }
        }
        // A store that already holds sealed data must be opened with the key that sealed it.
        let master = MasterKey::load_or_create(key_path, !existed || schema.is_none())?;
        let check: Option<Vec<u8>> = conn
            .query_row("SELECT v FROM meta WHERE k='key_check'", [], |r| r.get(0))
            .optional()
            .map_err(sql)?;
        match check {
            Some(c) => {
                master.open(b"key_check", &c)?;
            }
            None => {
                let sealed = master.seal(b"key_check", b"keyway")?;
                conn.execute(
                    "INSERT INTO meta (k, v) VALUES ('key_check', ?1)",
                    params![sealed],
                )
                .map_err(sql)?;
            }
        }
        if schema.is_some_and(|s| s < SCHEMA) {
            seal_schema_1(&conn, &master).map_err(|e| match e {
                Migrate::Sql(source) => StoreError::Sql {
                    path: p.clone(),
                    source,
                },
                Migrate::Crypto(c) => StoreError::Crypto(c),
            })?;
        }
        let store = Store {
            path,
            conn: Mutex::new(conn),
            state: RwLock::new(State::default()),
            master,
        };
        store.load()?;
        Ok(store)
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn corrupt(&self, kind: &str, key: &str, reason: impl ToString) -> StoreError {
        StoreError::Corrupt {
            path: self.path.display().to_string(),
            kind: kind.into(),
            key: key.into(),
            reason: reason.to_string(),
        }
    }

    /// Every row `sql` selects with `params`, as `row` reads it.
    fn rows<T>(
        &self,
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
        row: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut q = conn.prepare(sql).map_err(|e| self.err(e))?;
        let rows = q.query_map(params, row).map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    fn load(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = State::default();
        let mut secrets: Vec<(String, SecretMeta)> = Vec::new();
        {
            let docs = self.rows(&conn, "SELECT kind, key, body FROM docs", [], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for (kind, key, body) in docs {
                let bad = |e: serde_json::Error| self.corrupt(&kind, &key, e);
                match kind.as_str() {
                    "project" => {
                        let p: Project = serde_json::from_str(&body).map_err(bad)?;
                        st.projects.insert(p.id.clone(), p);
                    }
                    "user" => {
                        let u: User = serde_json::from_str(&body).map_err(bad)?;
                        st.users.insert(u.email.clone(), u);
                    }
                    "service_account" => {
                        let s: ServiceAccount = serde_json::from_str(&body).map_err(bad)?;
                        st.service_accounts.insert(s.email.clone(), s);
                    }
                    "instance" => {
                        let i: Instance = serde_json::from_str(&body).map_err(bad)?;
                        st.instances
                            .insert(Instance::key(&i.project, &i.zone, &i.name), i);
                    }
                    "wi_pool" => {
                        let p: WiPool = serde_json::from_str(&body).map_err(bad)?;
                        st.wi_pools.insert(WiPool::key(&p.project, &p.id), p);
                    }
                    "wi_provider" => {
                        let p: WiProvider = serde_json::from_str(&body).map_err(bad)?;
                        st.wi_providers
                            .insert(WiProvider::key(&p.project, &p.pool, &p.id), p);
                    }
                    "secret" => {
                        let (project, _) = key.split_once('/').ok_or_else(|| {
                            self.corrupt(&kind, &key, "key is not PROJECT/SECRET")
                        })?;
                        let m: SecretMeta = serde_json::from_str(&body).map_err(bad)?;
                        secrets.push((project.to_owned(), m));
                    }
                    k if k.starts_with("aws_") => {
                        match crate::aws::model::AwsDoc::parse(k, &body) {
                            Some(Ok(d)) => st.aws.apply(d),
                            Some(Err(e)) => return Err(bad(e)),
                            None => return Err(self.corrupt(&kind, &key, "unknown kind")),
                        }
                    }
                    _ => return Err(self.corrupt(&kind, &key, "unknown kind")),
                }
            }
        }
        for (project, meta) in secrets {
            let p = st
                .projects
                .get_mut(&project)
                .ok_or_else(|| self.corrupt("secret", &meta.id, "its project is missing"))?;
            p.secrets.insert(
                meta.id.clone(),
                SecretEntry {
                    meta,
                    versions: Vec::new(),
                },
            );
        }
        let versions = self.rows(
            &conn,
            "SELECT project, secret, number, create_ms, state, destroy_ms, crc32c, client_checksum, sealed FROM versions ORDER BY project, secret, number",
            [],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Vec<u8>>(6)?,
                    Version {
                        number: r.get::<_, i64>(2)? as u64,
                        create_ms: r.get(3)?,
                        state: VersionState::parse(&r.get::<_, String>(4)?)
                            .unwrap_or(VersionState::StateUnspecified),
                        destroy_ms: r.get(5)?,
                        crc32c: 0,
                        client_checksum: r.get::<_, i64>(7)? != 0,
                        sealed: r.get(8)?,
                    },
                ))
            },
        )?;
        for (project, secret, crc, mut v) in versions {
            v.crc32c = open_crc(&self.master, &project, &secret, v.number, &crc)?;
            let entry = st
                .projects
                .get_mut(&project)
                .and_then(|p| p.secrets.get_mut(&secret))
                .ok_or_else(|| {
                    self.corrupt(
                        "version",
                        &format!("{project}/{secret}/{}", v.number),
                        "its secret is missing",
                    )
                })?;
            if v.number != entry.versions.len() as u64 + 1 {
                return Err(self.corrupt(
                    "version",
                    &format!("{project}/{secret}/{}", v.number),
                    "version numbers have a gap",
                ));
            }
            entry.versions.push(v);
        }
        *self.state.write().unwrap_or_else(|e| e.into_inner()) = st;
        Ok(())
    }

    /// A read view of the state. Hold it briefly: writers wait for it.
    pub fn read(&self) -> RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-applied (apply
        // is infallible), so a poisoned lock is still consistent.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` against the current state with writers excluded; commits the
    /// changes it returns durably, applies them to memory, and returns `f`'s value.
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&State) -> Result<(Vec<Change>, R), E>,
    ) -> Result<R, E> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        let (changes, out) = {
            let st = self.read();
            f(&st)?
        };
        if changes.is_empty() {
            return Ok(out);
        }
        let tx = conn.transaction().map_err(|e| self.err(e))?;
        for c in &changes {
            self.persist(&tx, c)?;
        }
        tx.commit().map_err(|e| self.err(e))?;
        let mut st = self.state.write().unwrap_or_else(|e| e.into_inner());
        for c in changes {
            apply(&mut st, c);
        }
        Ok(out)
    }

    fn persist(&self, tx: &rusqlite::Transaction<'_>, c: &Change) -> Result<(), StoreError> {
        let put = |kind: &str, key: &str, body: String| {
            tx.execute(
                "INSERT OR REPLACE INTO docs (kind, key, body) VALUES (?1, ?2, ?3)",
                params![kind, key, body],
            )
            .map(|_| ())
        };
        let json = |v: &dyn erased::Ser| v.to_json();
        match c {
            Change::PutProject(p) => put("project", &p.id, json(p)),
            Change::PutUser(u) => put("user", &u.email, json(u)),
            Change::PutServiceAccount(s) => put("service_account", &s.email, json(s)),
            Change::PutInstance(i) => put("instance", &Instance::key(&i.project, &i.zone, &i.name), json(i)),
            Change::PutWiPool(p) => put("wi_pool", &WiPool::key(&p.project, &p.id), json(p)),
            Change::PutWiProvider(p) => put("wi_provider", &WiProvider::key(&p.project, &p.pool, &p.id), json(p)),
            Change::PutSecret { project, meta } => put("secret", &format!("{project}/{}", meta.id), json(meta)),
            Change::DeleteSecret { project, secret } => tx
                .execute("DELETE FROM docs WHERE kind='secret' AND key=?1", params![format!("{project}/{secret}")])
                .and_then(|_| tx.execute("DELETE FROM versions WHERE project=?1 AND secret=?2", params![project, secret]))
                .map(|_| ()),
            Change::PutVersion { project, secret, version: v } => seal_crc(&self.master, project, secret, v.number, v.crc32c)
                .and_then(|crc| tx.execute(
                    "INSERT OR REPLACE INTO versions (project, secret, number, create_ms, state, destroy_ms, crc32c, client_checksum, sealed)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![
                        project,
                        secret,
                        v.number as i64,
                        v.create_ms,
                        state_name(v.state),
                        v.destroy_ms,
                        crc,
                        v.client_checksum as i64,
                        v.sealed
                    ],
                ))
                .map(|_| ()),
            Change::PutAws(d) => put(d.kind(), &d.key(), d.to_json()),
            Change::DeleteAws { kind, key } => {
                tx.execute("DELETE FROM docs WHERE kind=?1 AND key=?2", params![kind, key]).map(|_| ())
            }
        }
        .map_err(|e| self.err(e))
    }

    /// A value in the meta table (the cloud's own sealed keys and settings).
    pub fn meta_get(&self, k: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.query_row("SELECT v FROM meta WHERE k=?1", params![k], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Keys of the meta table that start with `prefix`.
    pub fn meta_keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        self.rows(
            &conn,
            "SELECT k FROM meta WHERE substr(k, 1, length(?1)) = ?1 ORDER BY k",
            params![prefix],
            |r| r.get::<_, String>(0),
        )
    }

    /// A meta value sealed under its own key name (see [`Store::meta_put_sealed`]).
    pub fn meta_get_sealed(
        &self,
        k: &str,
    ) -> Result<Option<zeroize::Zeroizing<Vec<u8>>>, StoreError> {
        match self.meta_get(k)? {
            Some(sealed) => Ok(Some(self.master.open(k.as_bytes(), &sealed)?)),
            None => Ok(None),
        }
    }

    /// Seals `v` with the master key, bound to the key name `k`, and stores it.
    pub fn meta_put_sealed(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
        self.meta_put(k, &self.master.seal(k.as_bytes(), v)?)
    }

    pub fn meta_put(&self, k: &str, v: &[u8]) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        conn.execute(
            "INSERT OR REPLACE INTO meta (k, v) VALUES (?1, ?2)",
            params![k, v],
        )
        .map(|_| ())
        .map_err(|e| self.err(e))
    }

    /// Seals a secret payload for version `n` of `project/secret`.
    pub fn seal_payload(
        &self,
        project: &str,
        secret: &str,
        n: u64,
        data: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        Ok(self
            .master
            .seal(payload_aad(project, secret, n).as_bytes(), data)?)
    }

    pub fn open_payload(
        &self,
        project: &str,
        secret: &str,
        v: &Version,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, StoreError> {
        Ok(self
            .master
            .open(payload_aad(project, secret, v.number).as_bytes(), &v.sealed)?)
    }
}

fn payload_aad(project: &str, secret: &str, n: u64) -> String {
    format!("projects/{project}/secrets/{secret}/versions/{n}")
}

fn crc_aad(project: &str, secret: &str, n: u64) -> String {
    format!("projects/{project}/secrets/{secret}/versions/{n}:crc32c")
}

fn seal_crc(
    master: &MasterKey,
    project: &str,
    secret: &str,
    n: u64,
    crc: u32,
) -> Result<Vec<u8>, rusqlite::Error> {
    master
        .seal(crc_aad(project, secret, n).as_bytes(), &crc.to_be_bytes())
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

fn open_crc(
    master: &MasterKey,
    project: &str,
    secret: &str,
    n: u64,
    sealed: &[u8],
) -> Result<u32, StoreError> {
    let plain = master.open(crc_aad(project, secret, n).as_bytes(), sealed)?;
    let bytes: [u8; 4] = plain.as_slice().try_into().map_err(|_| CryptoError::Open)?;
    Ok(u32::from_be_bytes(bytes))
}

enum Migrate {
    Sql(rusqlite::Error),
    Crypto(CryptoError),
}

impl From<rusqlite::Error> for Migrate {
    fn from(e: rusqlite::Error) -> Self {
        Migrate::Sql(e)
    }
}

impl From<CryptoError> for Migrate {
    fn from(e: CryptoError) -> Self {
        Migrate::Crypto(e)
    }
}

/// Schema 1 → 2: seals each version's CRC32C and the settings row, in one
/// transaction, then checkpoints so that no clear copy stays in the WAL or
/// the database file (`secure_delete` overwrites what the updates free).
fn seal_schema_1(conn: &Connection, master: &MasterKey) -> Result<(), Migrate> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let run = || -> Result<(), Migrate> {
        let rows: Vec<(String, String, i64, i64)> = conn
            .prepare(
                "SELECT project, secret, number, crc32c FROM versions WHERE typeof(crc32c) = 'integer'",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<Result<_, _>>()?;
        for (project, secret, number, crc) in rows {
            let sealed = seal_crc(master, &project, &secret, number as u64, crc as u32)?;
            conn.execute(
                "UPDATE versions SET crc32c = ?1 WHERE project = ?2 AND secret = ?3 AND number = ?4",
                params![sealed, project, secret, number],
            )?;
        }
        let settings: Option<Vec<u8>> = conn
            .query_row("SELECT v FROM meta WHERE k = 'settings'", [], |r| r.get(0))
            .optional()?;
        if let Some(plain) = settings {
            let plain = zeroize::Zeroizing::new(plain);
            let sealed = master.seal(b"settings", &plain)?;
            conn.execute(
                "UPDATE meta SET v = ?1 WHERE k = 'settings'",
                params![sealed],
            )?;
        }
        conn.execute("UPDATE meta SET v = ?1 WHERE k = 'schema'", params![SCHEMA])?;
        Ok(())
    };
    match run() {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e);
        }
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    Ok(())
}

fn apply(st: &mut State, c: Change) {
    match c {
        Change::PutProject(mut p) => {
            if let Some(old) = st.projects.remove(&p.id) {
                p.secrets = old.secrets;
            }
            st.projects.insert(p.id.clone(), p);
        }
        Change::PutUser(u) => {
            st.users.insert(u.email.clone(), u);
        }
        Change::PutServiceAccount(s) => {
            st.service_accounts.insert(s.email.clone(), s);
        }
        Change::PutInstance(i) => {
            st.instances
                .insert(Instance::key(&i.project, &i.zone, &i.name), i);
        }
        Change::PutWiPool(p) => {
            st.wi_pools.insert(WiPool::key(&p.project, &p.id), p);
        }
        Change::PutWiProvider(p) => {
            st.wi_providers
                .insert(WiProvider::key(&p.project, &p.pool, &p.id), p);
        }
        Change::PutSecret { project, meta } => {
            if let Some(p) = st.projects.get_mut(&project) {
                match p.secrets.get_mut(&meta.id) {
                    Some(e) => e.meta = meta,
                    None => {
                        p.secrets.insert(
                            meta.id.clone(),
                            SecretEntry {
                                meta,
                                versions: Vec::new(),
                            },
                        );
                    }
                }
            }
        }
        Change::DeleteSecret { project, secret } => {
            if let Some(p) = st.projects.get_mut(&project) {
                p.secrets.remove(&secret);
            }
        }
        Change::PutVersion {
            project,
            secret,
            version,
        } => {
            if let Some(e) = st
                .projects
                .get_mut(&project)
                .and_then(|p| p.secrets.get_mut(&secret))
            {
                let i = version.number as usize - 1;
                if i < e.versions.len() {
                    e.versions[i] = version;
                } else {
                    e.versions.push(version);
                }
            }
        }
        Change::PutAws(d) => st.aws.apply(d),
        Change::DeleteAws { kind, key } => st.aws.remove(kind, &key),
    }
}

/// A tiny object-safe serialisation helper so `persist` can treat every document alike.
mod erased {
    pub trait Ser {
        fn to_json(&self) -> String;
    }
    impl<T: serde::Serialize> Ser for T {
        fn to_json(&self) -> String {
            // The document types are plain structs of strings, numbers and maps:
            // serialisation cannot fail.
            serde_json::to_string(self).unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(id: &str) -> Project {
        Project {
            id: id.into(),
            number: 42,
            create_ms: 1,
            iam: Policy::default(),
            secrets: BTreeMap::new(),
        }
    }

    fn meta(id: &str) -> SecretMeta {
        SecretMeta {
            id: id.into(),
            create_ms: 1,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            version_aliases: BTreeMap::new(),
            replication: serde_json::json!({"automatic": {}}),
            revision: 1,
            iam: Policy::default(),
        }
    }

    #[test]
    fn writes_survive_reopen_and_payloads_are_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("master.key");
        {
            let s = Store::open(dir.path(), &key).unwrap();
            s.write(|_| {
                let sealed = s.seal_payload("proj-one", "db", 1, b"PLAINTEXT-MARKER")?;
                Ok::<_, StoreError>((
                    vec![
                        Change::PutProject(project("proj-one")),
                        Change::PutSecret {
                            project: "proj-one".into(),
                            meta: meta("db"),
                        },
                        Change::PutVersion {
                            project: "proj-one".into(),
                            secret: "db".into(),
                            version: Version {
                                number: 1,
                                create_ms: 5,
                                state: VersionState::Enabled,
                                destroy_ms: None,
                                crc32c: 9,
                                client_checksum: true,
                                sealed,
                            },
                        },
                    ],
                    (),
                ))
            })
            .unwrap();
        }
        let raw = std::fs::read(dir.path().join("cloud.db")).unwrap();
        let wal = std::fs::read(dir.path().join("cloud.db-wal")).unwrap_or_default();
        for bytes in [&raw, &wal] {
            assert!(
                !bytes.windows(16).any(|w| w == b"PLAINTEXT-MARKER"),
                "plaintext reached the database file"
            );
        }
        let s = Store::open(dir.path(), &key).unwrap();
        let st = s.read();
        let e = &st.project("42").unwrap().secrets["db"];
        assert_eq!(e.versions.len(), 1);
        assert_eq!(
            s.open_payload("proj-one", "db", &e.versions[0])
                .unwrap()
                .as_slice(),
            b"PLAINTEXT-MARKER"
        );
    }

    #[test]
    fn wrong_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(dir.path(), &dir.path().join("k1")).unwrap();
        std::fs::write(dir.path().join("k2"), "11".repeat(32)).unwrap();
        let e = Store::open(dir.path(), &dir.path().join("k2"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("master key"), "{e}");
        let e = Store::open(dir.path(), &dir.path().join("missing"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("missing"), "{e}");
    }
}
