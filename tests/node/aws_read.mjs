// An unmodified Node workload reading an AWS secret with the AWS SDK for
// JavaScript v3 and its default credential chain (no keys given). Under the
// broker the chain finds AWS_CONTAINER_CREDENTIALS_FULL_URI. The endpoint and
// region come from AWS_ENDPOINT_URL and AWS_REGION, as the SDK reads them.
//
// Usage: node aws_read.mjs SECRET_ID
import {SecretsManagerClient, GetSecretValueCommand} from '@aws-sdk/client-secrets-manager';

const [secretId] = process.argv.slice(2);
const out = {forbidden_env: ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE',
  'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN'].filter(k => k in process.env)};
const sm = new SecretsManagerClient({});
try {
  const r = await sm.send(new GetSecretValueCommand({SecretId: secretId}));
  out.value = r.SecretString;
  const creds = await sm.config.credentials();
  out.access_key_prefix = creds.accessKeyId.slice(0, 4);
  out.expires = creds.expiration ? creds.expiration.toISOString() : null;
} catch (e) {
  out.error = `${e.name}: ${e.message}`;
}
console.log(JSON.stringify(out));
