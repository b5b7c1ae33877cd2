//! Seeding the AWS half from the world (once, like the Google half), and the
//! files rewritten at every start: each IAM user's shared credentials file,
//! and the Secrets Manager versions that hold a world-declared Google
//! service-account key.
//!
//! Why re-render those versions: a key's JSON embeds `token_uri`, the live
//! Google port, which changes at every start. A secret frozen at the first
//! start would point clients at a dead port after a restart, so at each start
//! the versions declared with `value_from_key` are re-sealed with the current
//! key file (same version id and stages; only the `token_uri` differs).

use super::ids::{random_alnum, random_upper, uuid4};
use super::model::{
    AccessKey, Account, AwsDoc, AwsSecret, Ec2Instance, EcsTask, IamUser, OidcProvider, Role,
    SecretVersion, Tag, TaskSecret,
};
use super::secretsmanager::{CURRENT, PREVIOUS, seal};
use super::world::AwsWorld;
use crate::crypto;
use crate::error::CloudError;
use crate::store::{Change, Store, StoreError};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The documents the world declares.
pub fn changes(store: &Store, now: i64, w: &AwsWorld) -> Result<Vec<Change>, CloudError> {
    let mut out = Vec::new();
    for a in &w.accounts {
        out.push(Change::PutAws(AwsDoc::Account(Account {
            id: a.id.clone(),
            alias: a.alias.clone(),
        })));
    }
    for u in &w.users {
        let arn = super::model::user_arn(&u.account, &u.name);
        out.push(Change::PutAws(AwsDoc::User(IamUser {
            account: u.account.clone(),
            name: u.name.clone(),
            arn: arn.clone(),
            id: format!("AIDA{}", random_upper(17)?),
            policies: super::model::InlinePolicies::from_unnamed(&u.policies),
            create_ms: now,
        })));
        for _ in 0..u.access_keys.unwrap_or(1) {
            let id = format!("AKIA{}", random_upper(16)?);
            let mut secret = STANDARD.encode(crypto::random_bytes::<30>()?);
            secret.truncate(40);
            let sealed = store
                .master
                .seal(format!("aws-key:{id}").as_bytes(), secret.as_bytes())?;
            out.push(Change::PutAws(AwsDoc::Key(AccessKey {
                id,
                user_arn: arn.clone(),
                sealed_secret: STANDARD.encode(sealed),
                create_ms: now,
                status: "Active".into(),
            })));
        }
    }
    for r in &w.roles {
        out.push(Change::PutAws(AwsDoc::Role(Role {
            account: r.account.clone(),
            name: r.name.clone(),
            arn: super::model::role_arn(&r.account, &r.name),
            id: format!("AROA{}", random_upper(17)?),
            trust: r
                .trust
                .clone()
                .unwrap_or_else(|| serde_json::json!({"Version": "2012-10-17", "Statement": []})),
            policies: super::model::InlinePolicies::from_unnamed(&r.policies),
            max_session_secs: r.max_session_secs.unwrap_or(3600),
            create_ms: now,
        })));
    }
    for p in &w.oidc_providers {
        let url = super::world::oidc_host(&p.url).unwrap_or_default();
        out.push(Change::PutAws(AwsDoc::OidcProvider(OidcProvider {
            account: p.account.clone(),
            arn: super::model::oidc_provider_arn(&p.account, &url),
            url,
            client_ids: p.client_id_list.clone(),
            jwks: p.jwks.clone(),
            jwks_file: p.jwks_file.clone(),
        })));
    }
    for i in &w.ec2 {
        out.push(Change::PutAws(AwsDoc::Ec2(Ec2Instance {
            name: i.name.clone(),
            account: i.account.clone(),
            region: i.region.clone(),
            availability_zone: i
                .availability_zone
                .clone()
                .unwrap_or_else(|| format!("{}a", i.region)),
            instance_id: format!("i-{}", &crypto::random_hex(9)?[..17]),
            instance_type: i.instance_type.clone().unwrap_or_else(|| "t3.micro".into()),
            role_arn: i
                .role
                .as_ref()
                .map(|r| super::model::role_arn(&i.account, r)),
            create_ms: now,
        })));
    }
    for t in &w.tasks {
        let task = EcsTask {
            name: t.name.clone(),
            account: t.account.clone(),
            region: t.region.clone(),
            cluster: t.cluster.clone().unwrap_or_else(|| "default".into()),
            family: t.family.clone().unwrap_or_else(|| t.name.clone()),
            revision: 1,
            task_id: crypto::random_hex(16)?,
            credentials_id: uuid4()?,
            task_role_arn: t
                .task_role
                .as_ref()
                .map(|r| super::model::role_arn(&t.account, r)),
            execution_role_arn: t
                .execution_role
                .as_ref()
                .map(|r| super::model::role_arn(&t.account, r)),
            instance: t.instance.clone(),
            secrets: t
                .secrets
                .iter()
                .map(|s| TaskSecret {
                    name: s.name.clone(),
                    value_from: s.value_from.clone(),
                })
                .collect(),
            environment: t.environment.clone(),
            create_ms: now,
        };
        // The task's definition is revision 1 of its family.
        out.push(Change::PutAws(AwsDoc::TaskDef(
            super::ecs::world_definition(&task),
        )));
        out.push(Change::PutAws(AwsDoc::Task(task)));
    }
    for s in &w.secrets {
        let arn = super::model::secret_arn(&s.region, &s.account, &s.name, &random_alnum(6)?);
        let n = s.versions.len();
        let mut versions = Vec::new();
        for (i, v) in s.versions.iter().enumerate() {
            let id = match &v.id {
                Some(id) => id.clone(),
                None => uuid4()?,
            };
            let stages = v.stages.clone().unwrap_or_else(|| match n - i {
                1 => vec![CURRENT.to_owned()],
                2 => vec![PREVIOUS.to_owned()],
                _ => Vec::new(),
            });
            let (data, binary) = match (&v.string, &v.binary_base64) {
                (Some(s), _) => (s.as_bytes().to_vec(), false),
                (None, Some(b)) => (STANDARD.decode(b.trim()).unwrap_or_default(), true),
                // Rendered with the live token endpoint at each start (`refresh`).
                _ => (b"{}".to_vec(), false),
            };
            versions.push(SecretVersion {
                sealed: seal(store, &arn, &id, &data)?,
                id,
                stages,
                create_ms: now,
                binary,
                key_ref: v.value_from_key.clone(),
            });
        }
        out.push(Change::PutAws(AwsDoc::Secret(AwsSecret {
            arn,
            account: s.account.clone(),
            region: s.region.clone(),
            name: s.name.clone(),
            description: s.description.clone(),
            kms_key_id: s.kms_key_id.clone(),
            tags: s
                .tags
                .iter()
                .map(|(k, v)| Tag {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            create_ms: now,
            changed_ms: now,
            deletion_ms: None,
            deleted_ms: None,
            policy: s.policy.clone(),
            versions,
        })));
    }
    Ok(out)
}

/// Rewrites what embeds the live endpoints: versions holding a world-declared
/// Google key (re-sealed with `token_uri`), and each IAM user's credentials
/// file at `DATA/aws/users/ACCOUNT/NAME/credentials`. `world_keys` holds
/// each world-declared key's JSON file by name, as the cloud wrote it with
/// the live `token_uri`.
pub fn refresh(
    store: &Store,
    data_dir: &Path,
    world_keys: &BTreeMap<String, Zeroizing<Vec<u8>>>,
) -> Result<(), CloudError> {
    let secrets: Vec<AwsSecret> = store
        .read()
        .aws
        .secrets
        .values()
        .filter(|s| s.versions.iter().any(|v| v.key_ref.is_some()))
        .cloned()
        .collect();
    let mut ch = Vec::new();
    for mut s in secrets {
        for v in &mut s.versions {
            let Some(name) = &v.key_ref else { continue };
            if let Some(json) = world_keys.get(name) {
                v.sealed = seal(store, &s.arn, &v.id, json)?;
            }
        }
        ch.push(Change::PutAws(AwsDoc::Secret(s)));
    }
    if !ch.is_empty() {
        store.write(|_| Ok::<_, StoreError>((ch, ())))?;
    }
    let keys: Vec<(AccessKey, String, String)> = {
        let st = store.read();
        st.aws
            .keys
            .values()
            .filter_map(|k| {
                st.aws
                    .users
                    .get(&k.user_arn)
                    .map(|u| (k.clone(), u.account.clone(), u.name.clone()))
            })
            .collect()
    };
    let mut files: BTreeMap<PathBuf, String> = BTreeMap::new();
    for (k, account, name) in keys {
        let raw = STANDARD
            .decode(&k.sealed_secret)
            .map_err(|e| crypto::CryptoError::BadKey(e.to_string()))?;
        let secret = store
            .master
            .open(format!("aws-key:{}", k.id).as_bytes(), &raw)?;
        let path = data_dir
            .join("aws")
            .join("users")
            .join(&account)
            .join(&name)
            .join("credentials");
        let text = files.entry(path).or_default();
        // The first key is the default profile; a second one is `[key2]`.
        let profile = if text.is_empty() {
            "default".to_owned()
        } else {
            "key2".to_owned()
        };
        text.push_str(&format!(
            "[{profile}]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
            k.id,
            String::from_utf8_lossy(&secret)
        ));
    }
    for (path, text) in files {
        let text = Zeroizing::new(text);
        if let Some(dir) = path.parent() {
            crate::datadir::private_dir(dir).map_err(|source| CloudError::Io {
                path: dir.display().to_string(),
                source,
            })?;
        }
        crypto::write_private(&path, text.as_bytes()).map_err(|source| CloudError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}
