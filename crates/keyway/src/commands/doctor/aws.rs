//! The AWS half of `keyway doctor`: the credential chain (which source, what
//! was tried; an ECS task without a task role; a task on EC2 that fell back
//! to the node's instance role), who the credentials are (STS
//! GetCallerIdentity: expired, unknown, a clock too far off, a leftover
//! session token), and each Secrets Manager reference (AccessDenied with the
//! principal, the action, the resource and the statement to add).

use super::{Cloud, Step, skipped_references, tried};
use crate::aws;
use crate::diagnosis::{Code, Problem};
use keyway_auth::{AwsAuthError, AwsOutcome, AwsSourceKind};
use keyway_core::{Env, SecretRef, SystemClock, vars};
use keyway_secrets::{FetchError, Fetcher};
use std::sync::Arc;
use std::time::Duration;

const A: Cloud = Cloud::Aws;

pub async fn walk(
    env: &Env,
    http: &reqwest::Client,
    refs: &[&SecretRef],
    timeout: Duration,
    no_refs: bool,
) -> Vec<Step> {
    let mut steps = Vec::new();
    // 1. The chain. IMDS at its default address only where this is EC2 (as whoami).
    let chain = Step::new(A, "credentials", "AWS credentials (the SDKs' chain)");
    let probe_imds = aws::looks_like_ec2();
    let provider = match tokio::time::timeout(timeout, aws::provider(env, http, probe_imds)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            let problem = aws::credentials_problem(env, &e);
            let mut s = chain.found(e.to_string());
            if let AwsAuthError::NotConfigured { attempts } = &e {
                s = s.looked_in(tried(attempts.iter().map(|a| (&a.source, &a.outcome))));
                // Nothing configured and no reference asked for AWS: not a failure of this machine.
                if no_refs
                    && !aws::in_ecs(env)
                    && attempts
                        .iter()
                        .all(|a| matches!(a.outcome, AwsOutcome::NotConfigured(_)))
                {
                    steps.push(s.skipped("no AWS credentials are configured here"));
                    return steps;
                }
            }
            steps.push(s.failed(problem));
            steps.extend(skipped_references(A, refs, "no AWS credentials"));
            return steps;
        }
        Err(_) => {
            steps.push(chain.failed(Some(Problem::new(
                Code::Unreachable,
                format!(
                    "the AWS credential chain did not answer within {}s",
                    timeout.as_secs()
                ),
            ))));
            steps.extend(skipped_references(A, refs, "no AWS credentials"));
            return steps;
        }
    };
    let mut found = provider.source().to_string();
    if let Some((r, from)) = provider.region() {
        found.push_str(&format!("; region {r} (from {from})"));
    }
    let s = chain
        .looked_in(tried(
            provider.attempts().iter().map(|a| (&a.source, &a.outcome)),
        ))
        .found(found);
    // An ECS task whose credentials came from the node (EC2 launch type, no task role).
    steps.push(
        if aws::in_ecs(env) && provider.source().kind == AwsSourceKind::Imds {
            s.warning(Problem::new(
                Code::AwsEcsUsesInstanceRole,
                "this ECS task has no task role, so keyway fell back to the EC2 instance's role: every task on the node \
                 shares it, and it changes with the node. Set taskRoleArn in the task definition (and, to close the fallback, \
                 ECS_AWSVPC_BLOCK_IMDS=true or a hop limit of 1 on the instances)",
            ))
        } else {
            s
        },
    );
    // 2. Who the credentials are.
    let id_step = Step::new(
        A,
        "identity",
        "who the credentials are (STS GetCallerIdentity)",
    );
    let facts = aws::facts(&provider).await;
    let identity = match &facts.identity {
        Some(id) => Ok(id.clone()),
        None => keyway_auth::caller_identity(&provider).await,
    };
    match identity {
        Ok(id) => steps.push(id_step.found(id.arn)),
        Err(e) => {
            let problem = match &e {
                AwsAuthError::Rejected(r) => aws::refused_problem(r, Some(&facts)),
                other => aws::credentials_problem(env, other),
            };
            steps.push(id_step.found(e.to_string()).failed(problem));
            steps.extend(skipped_references(A, refs, "AWS refuses the credentials"));
            return steps;
        }
    }
    // 3. Each reference.
    let mut fetcher = Fetcher::new(http.clone(), env, Arc::new(SystemClock));
    fetcher.retry = keyway_secrets::retry_within(timeout);
    fetcher.aws = Some(provider.clone());
    for r in refs {
        let s = Step::new(A, "reference", "the secret's value").reference(r);
        match fetcher.fetch_versioned(r, None).await {
            Ok(v) => steps.push(s.found(format!(
                "version {} ({} bytes)",
                v.version.as_deref().unwrap_or("?"),
                v.value.expose().len()
            ))),
            Err(e) => {
                let problem = match &e {
                    FetchError::Transport { error, .. } => {
                        Some(crate::commands::resolve::transport_problem(
                            error,
                            vars::AWS_ENDPOINT_URL_SECRETSMANAGER,
                        ))
                    }
                    e => aws::problem(e, &r.source, Some(&provider), env, &facts),
                };
                steps.push(s.found(e.to_string()).failed(problem));
            }
        }
    }
    steps
}
