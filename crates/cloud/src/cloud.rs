//! [`Cloud`]: the running local cloud's shared context. It owns the store, the
//! keys, the clock and the settings; seeds the store from a world file the first
//! time; mints and verifies tokens; and (re)writes the credential files a
//! developer points clients at (gcloud-style ADC files for users, JSON keys for
//! service accounts declared in the world), since those embed the live endpoint.

use crate::crypto::{self, JwtSigner, MintedKey, TokenClaims, TokenKey};
pub use crate::error::CloudError;
use crate::iam;
use crate::store::{
    Change, Instance, Project, SecretMeta, ServiceAccount, ServiceAccountKey, Store, StoreError,
    User, Version,
};
use crate::world::{self, World};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_core::Clock;
use keyway_wire::google::compute::Operation;
use keyway_wire::google::iam::Policy;
use keyway_wire::google::oauth2::{AuthorizedUserFile, ServiceAccountKeyFile};
use keyway_wire::google::secretmanager::VersionState;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub const DEFAULT_TOKEN_LIFETIME: i64 = 3599;

/// The meta row holding the SHA-256 of the world file the store was seeded from.
const WORLD_DIGEST: &str = "world_sha256";

/// Lifetime of the token cached in users' ADC files (see `write_credential_files`).
pub const ADC_TOKEN_LIFETIME: i64 = 12 * 3600;

/// Scopes `gcloud auth application-default login` asks for.
pub const USER_SCOPES: &[&str] = &[
    "openid",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/sqlservice.login",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Settings {
    token_lifetime_secs: i64,
    oauth_client_id: String,
    oauth_client_secret: String,
}

/// Who is calling, from a verified bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `user:EMAIL`, `serviceAccount:EMAIL`, or for a federated workload
    /// `principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/subject/SUBJECT`.
    pub member: String,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    /// A federated workload's pool context (groups, attributes), for `principalSet://` bindings.
    pub federated: Option<iam::Federated>,
}

impl Caller {
    pub fn email(&self) -> &str {
        self.member
            .split_once(':')
            .map(|(_, e)| e)
            .unwrap_or(&self.member)
    }

    /// The caller as IAM sees it.
    pub fn principal(&self) -> iam::Principal<'_> {
        iam::Principal {
            member: &self.member,
            federated: self.federated.as_ref(),
        }
    }
}

pub struct Cloud {
    pub store: Store,
    pub tokens: TokenKey,
    pub signer: JwtSigner,
    pub clock: Arc<dyn Clock>,
    pub data_dir: PathBuf,
    settings: Settings,
    /// Compute operations, kept in memory (they are all DONE when returned).
    pub operations: Mutex<HashMap<String, Operation>>,
    /// Other APIs' long-running operations (`google.longrunning.Operation`,
    /// e.g. a provider update), by name; in memory, all done when returned.
    pub long_running: Mutex<HashMap<String, serde_json::Value>>,
}

impl Cloud {
    /// Opens the store in `data_dir`, creating keys on first use, and seeds it
    /// from `world` if the store is empty. Returns whether it seeded.
    pub fn open(
        data_dir: &Path,
        key_file: &Path,
        world: Option<&World>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Cloud, bool), CloudError> {
        crate::datadir::private_dir(data_dir).map_err(|source| CloudError::Io {
            path: data_dir.display().to_string(),
            source,
        })?;
        let store = Store::open(data_dir, key_file)?;
        let tokens = match store.meta_get("token_key")? {
            Some(s) => TokenKey::from_bytes(&store.master.open(b"token_key", &s)?),
            None => {
                let k = crypto::random_bytes::<32>()?;
                store.meta_put("token_key", &store.master.seal(b"token_key", &k)?)?;
                TokenKey::from_bytes(&k)
            }
        };
        let signer = match store.meta_get("jwt_key")? {
            Some(s) => JwtSigner::from_pkcs8(&store.master.open(b"jwt_key", &s)?)?,
            None => {
                let (signer, pkcs8) = JwtSigner::generate()?;
                store.meta_put("jwt_key", &store.master.seal(b"jwt_key", &pkcs8)?)?;
                signer
            }
        };
        let seeded_before = store.meta_get("seeded")?.is_some();
        // Sealed: it holds the OAuth client secret.
        let settings = match store.meta_get_sealed("settings")? {
            Some(b) => serde_json::from_slice(&b).map_err(|e| StoreError::Corrupt {
                path: data_dir.display().to_string(),
                kind: "meta".into(),
                key: "settings".into(),
                reason: e.to_string(),
            })?,
            None => {
                let s = Settings {
                    token_lifetime_secs: world
                        .and_then(|w| w.settings.token_lifetime_secs)
                        .unwrap_or(DEFAULT_TOKEN_LIFETIME),
                    oauth_client_id: format!(
                        "{}-keyway-local.apps.googleusercontent.com",
                        &crypto::random_hex(6)?
                    ),
                    oauth_client_secret: format!("GOCSPX-{}", crypto::random_hex(14)?),
                };
                let json = zeroize::Zeroizing::new(serde_json::to_vec(&s).unwrap_or_default());
                store.meta_put_sealed("settings", &json)?;
                s
            }
        };
        let cloud = Cloud {
            store,
            tokens,
            signer,
            clock,
            data_dir: data_dir.to_path_buf(),
            settings,
            operations: Mutex::new(HashMap::new()),
            long_running: Mutex::new(HashMap::new()),
        };
        let mut seeded = false;
        if !seeded_before {
            if let Some(w) = world {
                cloud.seed(w)?;
                cloud
                    .store
                    .meta_put(WORLD_DIGEST, w.source_sha256.as_bytes())?;
                seeded = true;
            }
            cloud.store.meta_put("seeded", b"1")?;
        } else if let Some(w) = world
            && let Some(recorded) = cloud.store.meta_get(WORLD_DIGEST)?
            && recorded != w.source_sha256.as_bytes()
        {
            // A store seeded before digests were recorded cannot be checked.
            return Err(CloudError::WorldDiffers {
                seeded: String::from_utf8_lossy(&recorded).into_owned(),
                given: w.source_sha256.clone(),
            });
        }
        Ok((cloud, seeded))
    }

    /// The SHA-256 (hex) of the world file the store was seeded from, if
    /// it was recorded (stores seeded before keyway recorded it have none).
    pub fn seeded_from(&self) -> Result<Option<String>, CloudError> {
        Ok(self
            .store
            .meta_get(WORLD_DIGEST)?
            .map(|d| String::from_utf8_lossy(&d).into_owned()))
    }

    pub fn token_lifetime(&self) -> i64 {
        self.settings.token_lifetime_secs
    }

    /// `requested` seconds, shortened to the world's `token_lifetime_secs` when
    /// the world set one below Google's default: a world with short-lived
    /// tokens gets them from every issuer (impersonation and ID tokens too).
    pub fn cap_lifetime(&self, requested: i64) -> i64 {
        let cap = self.settings.token_lifetime_secs;
        if cap < DEFAULT_TOKEN_LIFETIME {
            requested.min(cap)
        } else {
            requested
        }
    }

    pub fn oauth_client_id(&self) -> &str {
        &self.settings.oauth_client_id
    }

    pub fn oauth_client_secret_matches(&self, s: &str) -> bool {
        // Not a secret worth a constant-time compare in a local cloud, but cheap to do right.
        let a = crypto::sha256(s.as_bytes());
        let b = crypto::sha256(self.settings.oauth_client_secret.as_bytes());
        aws_lc_rs::constant_time::verify_slices_are_equal(&a, &b).is_ok()
    }

    fn seed(&self, w: &World) -> Result<(), CloudError> {
        let now = self.clock.now_millis();
        let mut changes = Vec::new();
        let mut projects: BTreeMap<String, Project> = BTreeMap::new();
        for p in &w.projects {
            projects.insert(
                p.id.clone(),
                Project {
                    id: p.id.clone(),
                    number: p.number,
                    create_ms: now,
                    iam: Policy::default(),
                    secrets: BTreeMap::new(),
                },
            );
            // Compute Engine creates this account when the API is enabled.
            let email = world::compute_default_sa(p.number);
            changes.push(Change::PutServiceAccount(ServiceAccount {
                email,
                project: p.id.clone(),
                unique_id: unique_id()?,
                display_name: "Compute Engine default service account".into(),
                keys: Vec::new(),
                iam: Policy::default(),
            }));
        }
        for u in &w.users {
            let refresh = format!("1//{}", crypto::random_hex(40)?);
            changes.push(Change::PutUser(User {
                email: u.email.clone(),
                client_id: self.settings.oauth_client_id.clone(),
                refresh_token_sha256: crypto::hex(&crypto::sha256(refresh.as_bytes())),
            }));
            self.store.meta_put(
                &format!("refresh:{}", u.email),
                &self
                    .store
                    .master
                    .seal(u.email.as_bytes(), refresh.as_bytes())?,
            )?;
        }
        for s in &w.service_accounts {
            let email = world::sa_email(s);
            let mut keys = Vec::new();
            for name in &s.keys {
                let k = crypto::mint_service_account_key()?;
                keys.push(ServiceAccountKey {
                    id: k.key_id.clone(),
                    public_der_b64: STANDARD.encode(&k.public_der),
                    create_ms: now,
                    disabled: false,
                });
                // World-declared keys keep their private half (sealed) so their
                // files can be rewritten with the live token endpoint at every start.
                let blob = serde_json::to_vec(&(name, &k.key_id, k.private_pem.as_str()))
                    .unwrap_or_default();
                self.store.meta_put(
                    &format!("sakey:{email}:{name}"),
                    &self.store.master.seal(email.as_bytes(), &blob)?,
                )?;
            }
            changes.push(Change::PutServiceAccount(ServiceAccount {
                email,
                project: s.project.clone(),
                unique_id: match &s.unique_id {
                    Some(u) => u.clone(),
                    None => unique_id()?,
                },
                display_name: s.display_name.clone().unwrap_or_default(),
                keys,
                iam: Policy::default(),
            }));
        }
        for i in &w.instances {
            let number = projects
                .get(&i.project)
                .map(|p| p.number)
                .unwrap_or_default();
            let sa = match i.service_account.as_deref() {
                None | Some("default") => Some(world::compute_default_sa(number)),
                Some("none") => None,
                Some(e) => Some(e.to_owned()),
            };
            changes.push(Change::PutInstance(Instance {
                project: i.project.clone(),
                zone: i.zone.clone(),
                name: i.name.clone(),
                id: u64::from_be_bytes(crypto::random_bytes::<8>()?) >> 1,
                create_ms: now,
                status: i.status.clone().unwrap_or_else(|| "RUNNING".into()),
                machine_type: i.machine_type.clone().unwrap_or_else(|| "e2-medium".into()),
                scopes: if sa.is_some() {
                    i.scopes.clone().unwrap_or_default()
                } else {
                    Vec::new()
                },
                service_account: sa,
                attributes: i.attributes.clone(),
                fingerprint: crypto::random_hex(8)?,
                last_start_ms: (i.status.as_deref().unwrap_or("RUNNING") == "RUNNING")
                    .then_some(now),
                last_stop_ms: None,
            }));
        }
        let mut secret_meta: BTreeMap<(String, String), SecretMeta> = BTreeMap::new();
        for (s, _) in &w.secrets {
            let meta = SecretMeta {
                id: s.name.clone(),
                create_ms: now,
                labels: s.labels.clone(),
                annotations: BTreeMap::new(),
                version_aliases: BTreeMap::new(),
                replication: serde_json::json!({"automatic": {}}),
                revision: 1,
                iam: Policy::default(),
            };
            secret_meta.insert((s.project.clone(), s.name.clone()), meta);
        }
        let mut sa_policies: BTreeMap<String, Policy> = BTreeMap::new();
        for b in &w.bindings {
            let parts: Vec<&str> = b.resource.split('/').collect();
            let policy = match parts.as_slice() {
                ["projects", p] => projects.get_mut(*p).map(|p| &mut p.iam),
                ["projects", p, "secrets", s] => secret_meta
                    .get_mut(&(p.to_string(), s.to_string()))
                    .map(|m| &mut m.iam),
                ["projects", _, "serviceAccounts", email] => {
                    Some(sa_policies.entry(email.to_string()).or_default())
                }
                _ => None,
            };
            if let Some(policy) = policy {
                for m in &b.members {
                    iam::add_binding(policy, &b.role, m);
                }
            }
        }
        for c in changes.iter_mut() {
            if let Change::PutServiceAccount(sa) = c
                && let Some(p) = sa_policies.remove(&sa.email)
            {
                sa.iam = p;
            }
        }
        for p in &w.wi_pools {
            changes.push(Change::PutWiPool(crate::store::WiPool {
                project: p.project.clone(),
                id: p.id.clone(),
                display_name: p.display_name.clone().unwrap_or_default(),
                disabled: p.disabled,
                create_ms: now,
            }));
        }
        for p in &w.wi_providers {
            changes.push(Change::PutWiProvider(p.clone()));
        }
        for p in projects.into_values() {
            changes.insert(0, Change::PutProject(p));
        }
        for ((project, secret), meta) in secret_meta {
            changes.push(Change::PutSecret {
                project: project.clone(),
                meta,
            });
            let versions = w
                .secrets
                .iter()
                .find(|(d, _)| d.project == project && d.name == secret)
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            for (n, (data, state)) in versions.iter().enumerate() {
                let number = n as u64 + 1;
                let state = VersionState::parse(state).unwrap_or(VersionState::Enabled);
                let destroyed = state == VersionState::Destroyed;
                changes.push(Change::PutVersion {
                    project: project.clone(),
                    secret: secret.clone(),
                    version: Version {
                        number,
                        create_ms: now,
                        state,
                        destroy_ms: destroyed.then_some(now),
                        crc32c: crc32c::crc32c(data),
                        client_checksum: false,
                        sealed: if destroyed {
                            Vec::new()
                        } else {
                            self.store.seal_payload(&project, &secret, number, data)?
                        },
                    },
                });
            }
        }
        changes.extend(crate::aws::seed::changes(&self.store, now, &w.aws)?);
        self.store.write(|_| Ok::<_, StoreError>((changes, ())))?;
        Ok(())
    }

    /// Writes the files a developer hands to clients, embedding `token_uri`:
    /// `DATA/users/EMAIL/gcloud/application_default_credentials.json` per user
    /// (the directory is a CLOUDSDK_CONFIG) and `DATA/keys/NAME.json` per
    /// world-declared service-account key.
    pub fn write_credential_files(&self, token_uri: &str) -> Result<(), CloudError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| CloudError::Io { path, source }
        };
        let users: Vec<User> = self.store.read().users.values().cloned().collect();
        for u in users {
            let Some(sealed) = self.store.meta_get(&format!("refresh:{}", u.email))? else {
                continue;
            };
            let refresh = self.store.master.open(u.email.as_bytes(), &sealed)?;
            // google-auth ignores an authorized_user file's token_uri and always
            // refreshes at oauth2.googleapis.com. A cached token (valid 12 hours)
            // in the file lets unmodified clients work against this cloud without
            // refreshing; keyway's own client honours token_uri.
            let scopes: Vec<String> = USER_SCOPES.iter().map(|s| s.to_string()).collect();
            let (token, life) = self.mint_access_token_with_lifetime(
                &format!("user:{}", u.email),
                &scopes,
                &u.client_id,
                ADC_TOKEN_LIFETIME,
            );
            let expiry = crate::time::rfc3339_seconds((self.clock.now_secs() + life) * 1000);
            let file = AuthorizedUserFile {
                type_: "authorized_user".into(),
                client_id: self.settings.oauth_client_id.clone(),
                client_secret: self.settings.oauth_client_secret.clone(),
                refresh_token: String::from_utf8_lossy(&refresh).into_owned(),
                quota_project_id: None,
                token_uri: Some(token_uri.to_owned()),
                universe_domain: Some("googleapis.com".into()),
                account: Some(u.email.clone()),
                token: Some(token),
                expiry: Some(expiry),
            };
            let dir = self.user_config_dir(&u.email);
            crate::datadir::private_dir(&dir).map_err(io(&dir))?;
            let path = dir.join("application_default_credentials.json");
            crypto::write_private(&path, &pretty_json(&file)).map_err(io(&path))?;
        }
        let keys_dir = self.data_dir.join("keys");
        // Each world-declared key's file by name (the first service account
        // declaring a name keeps it), for the AWS secrets that hold one.
        let mut world_keys = BTreeMap::new();
        for sa in self.service_accounts() {
            let names = self.world_key_names(&sa.email)?;
            for (name, key_id, pem) in names {
                crate::datadir::private_dir(&keys_dir).map_err(io(&keys_dir))?;
                let file = pretty_json(&self.key_file(&sa, &key_id, &pem, token_uri));
                let path = keys_dir.join(format!("{name}.json"));
                crypto::write_private(&path, &file).map_err(io(&path))?;
                world_keys.entry(name).or_insert(file);
            }
        }
        // AWS secrets holding a world-declared key, and IAM users' credentials files.
        crate::aws::seed::refresh(&self.store, &self.data_dir, &world_keys)?;
        Ok(())
    }

    /// Every service account, as the store holds them now.
    fn service_accounts(&self) -> Vec<ServiceAccount> {
        self.store
            .read()
            .service_accounts
            .values()
            .cloned()
            .collect()
    }

    fn world_key_names(
        &self,
        email: &str,
    ) -> Result<Vec<(String, String, zeroize::Zeroizing<String>)>, CloudError> {
        let mut out = Vec::new();
        // Key names are not indexed; the world is small, so scan the meta prefix.
        for name in self
            .store
            .meta_keys_with_prefix(&format!("sakey:{email}:"))?
        {
            if let Some(sealed) = self.store.meta_get(&name)? {
                let blob = self.store.master.open(email.as_bytes(), &sealed)?;
                if let Ok((n, id, pem)) = serde_json::from_slice::<(String, String, String)>(&blob)
                {
                    out.push((n, id, zeroize::Zeroizing::new(pem)));
                }
            }
        }
        Ok(out)
    }

    pub fn key_file(
        &self,
        sa: &ServiceAccount,
        key_id: &str,
        pem: &str,
        token_uri: &str,
    ) -> ServiceAccountKeyFile {
        ServiceAccountKeyFile {
            type_: "service_account".into(),
            project_id: sa.project.clone(),
            private_key_id: key_id.to_owned(),
            private_key: pem.to_owned(),
            client_email: sa.email.clone(),
            client_id: sa.unique_id.clone(),
            auth_uri: "https://accounts.google.com/o/oauth2/auth".into(),
            token_uri: token_uri.to_owned(),
            auth_provider_x509_cert_url: "https://www.googleapis.com/oauth2/v1/certs".into(),
            client_x509_cert_url: format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                percent_encoding::utf8_percent_encode(
                    &sa.email,
                    percent_encoding::NON_ALPHANUMERIC
                )
            ),
            universe_domain: "googleapis.com".into(),
        }
    }

    /// The CLOUDSDK_CONFIG directory holding a user's ADC file.
    pub fn user_config_dir(&self, email: &str) -> PathBuf {
        self.data_dir.join("users").join(email).join("gcloud")
    }

    /// Mints an access token for `member` with `scopes`.
    pub fn mint_access_token(&self, member: &str, scopes: &[String], azp: &str) -> (String, i64) {
        self.mint_access_token_with_lifetime(member, scopes, azp, self.settings.token_lifetime_secs)
    }

    pub fn mint_access_token_with_lifetime(
        &self,
        member: &str,
        scopes: &[String],
        azp: &str,
        life: i64,
    ) -> (String, i64) {
        let token = self.mint(member.to_owned(), scopes, azp.to_owned(), None, life);
        (token, life)
    }

    /// Mints a federated access token (STS token exchange) for the workload
    /// `fed`, valid `life` seconds.
    pub fn mint_federated_token(
        &self,
        fed: &iam::Federated,
        scopes: &[String],
        life: i64,
    ) -> String {
        self.mint(fed.member(), scopes, String::new(), Some(fed.clone()), life)
    }

    /// An access token of `sub` (for the client `azp`; a federated workload's
    /// pool context in `fed`), issued now and valid `life` seconds.
    fn mint(
        &self,
        sub: String,
        scopes: &[String],
        azp: String,
        fed: Option<iam::Federated>,
        life: i64,
    ) -> String {
        let now = self.clock.now_secs();
        self.tokens.mint(&TokenClaims {
            sub,
            scp: scopes.to_vec(),
            iat: now,
            exp: now + life,
            azp,
            fed,
        })
    }

    /// Verifies a bearer token.
    pub fn verify_access_token(&self, token: &str) -> Result<Caller, TokenProblem> {
        let c = self.tokens.verify(token).ok_or(TokenProblem::Invalid)?;
        if c.exp <= self.clock.now_secs() {
            return Err(TokenProblem::Expired);
        }
        Ok(Caller {
            member: c.sub,
            scopes: c.scp,
            expires_at: c.exp,
            federated: c.fed,
        })
    }

    /// Signs an ID token.
    pub fn sign_id_token(&self, claims: serde_json::Value) -> Result<String, crypto::CryptoError> {
        self.signer.sign_jwt(&claims)
    }

    /// The `external_account` credential configuration that `gcloud iam
    /// workload-identity-pools create-cred-config
    /// projects/N/locations/global/workloadIdentityPools/POOL/providers/PROVIDER
    /// [--service-account EMAIL] --aws|--credential-source-file|--credential-source-url`
    /// writes, with `token_url` and the impersonation URL on this cloud's Google
    /// API base (`google_base`, e.g. `http://127.0.0.1:PORT`). `project` is an id
    /// or number; the audience always carries the number, as Google's does.
    /// Fails when the pool or provider is not in the store, or the provider's
    /// type does not take that source (an AWS provider needs [`CredSource::Aws`]).
    pub fn cred_config(
        &self,
        google_base: &str,
        project: &str,
        pool: &str,
        provider: &str,
        service_account: Option<&str>,
        source: &CredSource,
    ) -> Result<serde_json::Value, String> {
        use crate::store::{WiPool, WiProvider, WiTrust};
        let base = google_base.trim_end_matches('/');
        let st = self.store.read();
        let p = st
            .project(project)
            .ok_or_else(|| format!("no project '{project}' in the local cloud"))?;
        if !st.wi_pools.contains_key(&WiPool::key(&p.id, pool)) {
            return Err(format!(
                "no workload identity pool '{pool}' in project '{}'",
                p.id
            ));
        }
        let pr = st
            .wi_providers
            .get(&WiProvider::key(&p.id, pool, provider))
            .ok_or_else(|| {
                format!("no provider '{provider}' in workload identity pool '{pool}'")
            })?;
        if let Some(sa) = service_account
            && !st.service_accounts.contains_key(sa)
        {
            return Err(format!("no service account '{sa}' in the local cloud"));
        }
        let format = |field: &Option<String>| {
            field
                .as_ref()
                .map(|f| serde_json::json!({"type": "json", "subject_token_field_name": f}))
        };
        let (subject_token_type, credential_source) = match (&pr.trust, source) {
            (WiTrust::Aws { .. }, CredSource::Aws { imds, imdsv2 }) => {
                let imds = imds
                    .as_deref()
                    .unwrap_or("http://169.254.169.254")
                    .trim_end_matches('/');
                let mut cs = serde_json::json!({
                    "environment_id": "aws1",
                    "region_url": format!("{imds}/latest/meta-data/placement/availability-zone"),
                    "url": format!("{imds}/latest/meta-data/iam/security-credentials"),
                    "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
                });
                if *imdsv2 {
                    cs["imdsv2_session_token_url"] = format!("{imds}/latest/api/token").into();
                }
                (keyway_wire::google::sts::TOKEN_TYPE_AWS4, cs)
            }
            (WiTrust::Oidc { .. }, CredSource::File { path, json_field }) => {
                let mut cs = serde_json::json!({ "file": path });
                if let Some(f) = format(json_field) {
                    cs["format"] = f;
                }
                (keyway_wire::google::sts::TOKEN_TYPE_JWT, cs)
            }
            (
                WiTrust::Oidc { .. },
                CredSource::Url {
                    url,
                    headers,
                    json_field,
                },
            ) => {
                let mut cs = serde_json::json!({ "url": url });
                if !headers.is_empty() {
                    cs["headers"] = serde_json::json!(headers);
                }
                if let Some(f) = format(json_field) {
                    cs["format"] = f;
                }
                (keyway_wire::google::sts::TOKEN_TYPE_JWT, cs)
            }
            (WiTrust::Aws { .. }, _) => {
                return Err(format!(
                    "provider '{provider}' is an AWS provider: use the aws credential source"
                ));
            }
            (WiTrust::Oidc { .. }, _) => {
                return Err(format!(
                    "provider '{provider}' is an OIDC provider: use a file or url credential source"
                ));
            }
        };
        let mut out = serde_json::json!({
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": format!("//iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{pool}/providers/{provider}", p.number),
            "subject_token_type": subject_token_type,
            "token_url": format!("{base}/v1/token"),
            "credential_source": credential_source,
        });
        if let Some(sa) = service_account {
            out["service_account_impersonation_url"] =
                format!("{base}/v1/projects/-/serviceAccounts/{sa}:generateAccessToken").into();
        }
        Ok(out)
    }

    /// Mints a new key for a service account (the IAM API's keys.create): the
    /// cloud keeps only the public half.
    pub fn mint_key(&self, email: &str) -> Result<Option<(ServiceAccount, MintedKey)>, CloudError> {
        let k = crypto::mint_service_account_key()?;
        let now = self.clock.now_millis();
        let out = self.store.write(|st| {
            let Some(sa) = st.service_accounts.get(email) else {
                return Ok::<_, StoreError>((vec![], None));
            };
            let mut sa = sa.clone();
            sa.keys.push(ServiceAccountKey {
                id: k.key_id.clone(),
                public_der_b64: STANDARD.encode(&k.public_der),
                create_ms: now,
                disabled: false,
            });
            Ok((vec![Change::PutServiceAccount(sa.clone())], Some(sa)))
        })?;
        Ok(out.map(|sa| (sa, k)))
    }
}

/// Where an `external_account` credential file tells the client to find its
/// subject token (the `credential_source` of `gcloud iam workload-identity-pools
/// create-cred-config`).
#[derive(Debug, Clone, PartialEq)]
pub enum CredSource {
    /// `--aws`: AWS credentials from the environment, else the EC2 metadata
    /// service at `imds` (`http://HOST:PORT`, an emulated EC2 instance's
    /// IMDS; `None` writes AWS's real `http://169.254.169.254`, as gcloud
    /// does). `imdsv2` adds `imdsv2_session_token_url` (`--enable-imdsv2`).
    Aws { imds: Option<String>, imdsv2: bool },
    /// `--credential-source-file`: an OIDC token in a file (plain text, or a
    /// JSON object whose `json_field` holds it).
    File {
        path: String,
        json_field: Option<String>,
    },
    /// `--credential-source-url` (+ `--credential-source-headers`).
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        json_field: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenProblem {
    Invalid,
    Expired,
}

/// A 21-digit numeric id, as Google gives service accounts and users.
pub fn unique_id() -> Result<String, crypto::CryptoError> {
    let n = u64::from_be_bytes(crypto::random_bytes::<8>()?) % 10_000_000_000_000_000_000;
    Ok(format!("1{n:020}"))
}

/// A credential file's bytes (pretty JSON), wiped when dropped.
fn pretty_json(v: &impl serde::Serialize) -> zeroize::Zeroizing<Vec<u8>> {
    zeroize::Zeroizing::new(serde_json::to_vec_pretty(v).unwrap_or_default())
}
