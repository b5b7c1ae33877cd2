//! Compute Engine v1, what seed 000 and gcloud's fixes for it need: instances
//! get/stop/start/setServiceAccount and zone operations (get, wait). Changing
//! the service account or its scopes requires the instance to be stopped, as on
//! GCE. An instance is rendered with what gcloud reads of it (one network
//! interface with its internal and, while running, external address, a boot
//! disk, scheduling). Operations complete at once and are kept in memory only.

use super::{
    ApiError, CLOUD_PLATFORM, CLOUD_PLATFORM_RO, Reply, Req, authenticate, ok_json, require_scope,
};
use crate::cloud::{Caller, Cloud};
use crate::iam;
use crate::store::{Change, Instance, State};
use axum::http::Method;
use keyway_wire::google::compute as wire;

const SERVICE: &str = "compute.googleapis.com";
const COMPUTE: &str = "https://www.googleapis.com/auth/compute";
const COMPUTE_RO: &str = "https://www.googleapis.com/auth/compute.readonly";
pub const BASE: &str = "https://www.googleapis.com/compute/v1";

fn denied(perm: &str, resource: &str) -> ApiError {
    ApiError::new(
        403,
        "PERMISSION_DENIED",
        format!("Required '{perm}' permission for '{resource}'"),
    )
    .legacy("forbidden")
}

pub fn dispatch(cloud: &Cloud, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    let (op, perm, write) = match (&s[6..], &req.method) {
        (["instances", _], &Method::GET) => ("get", "compute.instances.get", false),
        (["instances", _, "stop"], &Method::POST) => ("stop", "compute.instances.stop", true),
        (["instances", _, "start"], &Method::POST) => ("start", "compute.instances.start", true),
        (["instances", _, "setServiceAccount"], &Method::POST) => (
            "setServiceAccount",
            "compute.instances.setServiceAccount",
            true,
        ),
        (["operations", _], &Method::GET) => {
            ("operations.get", "compute.zoneOperations.get", false)
        }
        (["operations", _, "wait"], &Method::POST) => {
            ("operations.wait", "compute.zoneOperations.get", false)
        }
        _ => return Err(ApiError::unknown_path(&req.method, &req.path)),
    };
    let method = format!("compute.instances.{op}");
    let caller = authenticate(cloud, req, SERVICE, &method)?;
    let scopes: &[&str] = if write {
        &[CLOUD_PLATFORM, COMPUTE]
    } else {
        &[CLOUD_PLATFORM, CLOUD_PLATFORM_RO, COMPUTE, COMPUTE_RO]
    };
    require_scope(&caller, scopes, SERVICE, &method)?;
    let (project, zone, name) = (req.seg(3), req.seg(5), req.seg(7));
    let resource = format!("projects/{project}/zones/{zone}/{}/{name}", req.seg(6));
    {
        let st = cloud.store.read();
        if !st
            .project(project)
            .is_some_and(|p| iam::grants(&p.iam, &caller.principal(), perm))
        {
            return Err(denied(perm, &resource));
        }
    }
    if op.starts_with("operations") {
        let ops = cloud.operations.lock().unwrap_or_else(|e| e.into_inner());
        return match ops.get(name) {
            Some(o) => Ok(ok_json(o, false)),
            None => Err(
                ApiError::not_found(format!("The resource '{resource}' was not found"))
                    .legacy("notFound"),
            ),
        };
    }
    let project_id = cloud
        .store
        .read()
        .project(project)
        .map(|p| p.id.clone())
        .unwrap_or_default();
    let key = Instance::key(&project_id, zone, name);
    let not_found = || {
        ApiError::not_found(format!("The resource '{resource}' was not found")).legacy("notFound")
    };
    match op {
        "get" => {
            let st = cloud.store.read();
            let i = st.instances.get(&key).ok_or_else(not_found)?;
            Ok(ok_json(&render(i), false))
        }
        "stop" | "start" => {
            let to = if op == "stop" {
                "TERMINATED"
            } else {
                "RUNNING"
            };
            let now = cloud.clock.now_millis();
            let i = cloud.store.write(|st| {
                let mut i = st.instances.get(&key).ok_or_else(not_found)?.clone();
                if i.status != to {
                    if op == "stop" {
                        i.last_stop_ms = Some(now);
                    } else {
                        i.last_start_ms = Some(now);
                    }
                }
                i.status = to.into();
                Ok::<_, ApiError>((vec![Change::PutInstance(i.clone())], i))
            })?;
            Ok(ok_json(&operation(cloud, &caller, &i, op)?, false))
        }
        _ => {
            let body: wire::SetServiceAccountRequest = req.json()?;
            let i = cloud.store.write(|st| {
                set_service_account(st, &caller, &key, &resource, body.clone())
                    .map(|i| (vec![Change::PutInstance(i.clone())], i))
            })?;
            Ok(ok_json(
                &operation(cloud, &caller, &i, "setServiceAccount")?,
                false,
            ))
        }
    }
}

fn set_service_account(
    st: &State,
    caller: &Caller,
    key: &str,
    resource: &str,
    body: wire::SetServiceAccountRequest,
) -> Result<Instance, ApiError> {
    let mut i = st
        .instances
        .get(key)
        .ok_or_else(|| {
            ApiError::not_found(format!("The resource '{resource}' was not found"))
                .legacy("notFound")
        })?
        .clone();
    if i.status != "TERMINATED" {
        return Err(ApiError::new(
            400,
            "FAILED_PRECONDITION",
            format!("The instance '{}' must be stopped (it is {}) before its service account or scopes can be changed.", i.name, i.status),
        )
        .legacy("resourceNotReady"));
    }
    let number = st.project(&i.project).map(|p| p.number).unwrap_or_default();
    let email = match body.email.as_deref() {
        None => i.service_account.clone(),
        Some("") => None,
        Some("default") => Some(crate::world::compute_default_sa(number)),
        Some(e) => Some(e.to_owned()),
    };
    if let Some(e) = &email {
        let Some(sa) = st.service_accounts.get(e) else {
            return Err(ApiError::invalid_argument(format!("Invalid value for field 'resource.email': '{e}'. The service account does not exist.")).legacy("invalid"));
        };
        // Attaching an account lets the VM act as it: the caller needs actAs on it.
        let act_as = "iam.serviceAccounts.actAs";
        let ok = iam::grants(&sa.iam, &caller.principal(), act_as)
            || st
                .projects
                .get(&sa.project)
                .is_some_and(|p| iam::grants(&p.iam, &caller.principal(), act_as));
        if !ok {
            return Err(denied(
                act_as,
                &format!("projects/{}/serviceAccounts/{e}", sa.project),
            ));
        }
    }
    let scopes = body.scopes.unwrap_or_else(|| i.scopes.clone());
    let scopes = crate::world::expand_scopes(&scopes).map_err(|e| {
        ApiError::invalid_argument(format!("Invalid value for field 'resource.scopes': {e}."))
            .legacy("invalid")
    })?;
    if email.is_none() && !scopes.is_empty() {
        return Err(
            ApiError::invalid_argument("Scopes require a service account.").legacy("invalid"),
        );
    }
    i.service_account = email;
    i.scopes = scopes;
    i.fingerprint = crate::crypto::random_hex(8).map_err(|e| ApiError::internal(&e))?;
    Ok(i)
}

pub fn instance_link(i: &Instance) -> String {
    format!(
        "{BASE}/projects/{}/zones/{}/instances/{}",
        i.project, i.zone, i.name
    )
}

/// The region of a zone (`asia-northeast1-a` → `asia-northeast1`).
fn region_of(zone: &str) -> &str {
    zone.rsplit_once('-').map(|(r, _)| r).unwrap_or(zone)
}

/// The instance's addresses, derived from its id so they are stable: an
/// internal one in the default network's `10.128.0.0/9` space, and, while it
/// runs, an ephemeral external one that changes at each start. External
/// addresses come from TEST-NET-3 (203.0.113.0/24, RFC 5737), which routes
/// nowhere: nothing can mistake them for a real host.
fn addresses(i: &Instance) -> (String, Option<String>) {
    let internal = format!(
        "10.{}.{}.{}",
        128 + (i.id >> 16) % 64,
        (i.id >> 8) % 16,
        2 + i.id % 250
    );
    let external = (i.status == "RUNNING").then(|| {
        let seed = i.id ^ i.last_start_ms.unwrap_or(i.create_ms) as u64;
        format!("203.0.113.{}", 1 + seed % 254)
    });
    (internal, external)
}

fn render(i: &Instance) -> wire::Instance {
    let project = format!("{BASE}/projects/{}", i.project);
    let (internal, external) = addresses(i);
    wire::Instance {
        kind: "compute#instance".into(),
        id: i.id.to_string(),
        creation_timestamp: crate::time::rfc3339_offset(i.create_ms),
        name: i.name.clone(),
        machine_type: format!("{project}/zones/{}/machineTypes/{}", i.zone, i.machine_type),
        status: i.status.clone(),
        zone: format!("{project}/zones/{}", i.zone),
        service_accounts: i
            .service_account
            .iter()
            .map(|e| wire::ServiceAccountRef {
                email: e.clone(),
                scopes: i.scopes.clone(),
            })
            .collect(),
        metadata: wire::Metadata {
            kind: "compute#metadata".into(),
            fingerprint: i.fingerprint.clone(),
            items: i
                .attributes
                .iter()
                .map(|(k, v)| wire::MetadataItem {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        },
        self_link: instance_link(i),
        fingerprint: i.fingerprint.clone(),
        network_interfaces: vec![wire::NetworkInterface {
            kind: "compute#networkInterface".into(),
            name: "nic0".into(),
            network: format!("{project}/global/networks/default"),
            subnetwork: format!(
                "{project}/regions/{}/subnetworks/default",
                region_of(&i.zone)
            ),
            network_ip: internal,
            stack_type: "IPV4_ONLY".into(),
            fingerprint: i.fingerprint.clone(),
            access_configs: vec![wire::AccessConfig {
                kind: "compute#accessConfig".into(),
                name: "External NAT".into(),
                type_: "ONE_TO_ONE_NAT".into(),
                nat_ip: external,
                network_tier: "PREMIUM".into(),
            }],
        }],
        disks: vec![wire::AttachedDisk {
            kind: "compute#attachedDisk".into(),
            type_: "PERSISTENT".into(),
            mode: "READ_WRITE".into(),
            source: format!("{project}/zones/{}/disks/{}", i.zone, i.name),
            device_name: i.name.clone(),
            index: 0,
            boot: true,
            auto_delete: true,
            interface: "SCSI".into(),
            disk_size_gb: "10".into(),
        }],
        scheduling: Some(wire::Scheduling {
            on_host_maintenance: "MIGRATE".into(),
            automatic_restart: true,
            preemptible: false,
            provisioning_model: "STANDARD".into(),
        }),
        tags: Some(wire::Tags {
            fingerprint: "42WmSpB8rSM=".into(),
            items: Vec::new(),
        }),
        label_fingerprint: "42WmSpB8rSM=".into(),
        cpu_platform: if i.status == "RUNNING" {
            "Intel Broadwell".into()
        } else {
            "Unknown CPU Platform".into()
        },
        can_ip_forward: false,
        deletion_protection: false,
        last_start_timestamp: i.last_start_ms.map(crate::time::rfc3339_offset),
        last_stop_timestamp: i.last_stop_ms.map(crate::time::rfc3339_offset),
    }
}

fn operation(
    cloud: &Cloud,
    caller: &Caller,
    i: &Instance,
    kind: &str,
) -> Result<wire::Operation, ApiError> {
    let now = crate::time::rfc3339_offset(cloud.clock.now_millis());
    let id =
        u64::from_be_bytes(crate::crypto::random_bytes::<8>().map_err(|e| ApiError::internal(&e))?)
            >> 1;
    let name = format!(
        "operation-{}-{}",
        cloud.clock.now_millis(),
        crate::crypto::random_hex(6).map_err(|e| ApiError::internal(&e))?
    );
    let zone = format!("{BASE}/projects/{}/zones/{}", i.project, i.zone);
    let op = wire::Operation {
        kind: "compute#operation".into(),
        id: id.to_string(),
        name: name.clone(),
        self_link: format!("{zone}/operations/{name}"),
        zone,
        operation_type: kind.into(),
        target_link: instance_link(i),
        target_id: i.id.to_string(),
        status: "DONE".into(),
        user: caller.email().to_owned(),
        progress: 100,
        insert_time: now.clone(),
        start_time: now.clone(),
        end_time: now,
    };
    cloud
        .operations
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name, op.clone());
    Ok(op)
}
