// An unmodified Node workload reading a Google secret the way Google documents:
// Application Default Credentials (google-auth-library) and Secret Manager,
// once through google-auth-library's own client (REST) and once through
// @google-cloud/secret-manager (REST fallback). It has no credential file and
// no credential variable: on the broker, ADC finds the GCE metadata server.
// Reads repeatedly for DURATION_SECS, so tokens expire and are refreshed in
// between; prints one JSON line with what it saw.
//
// Usage: node google_read.mjs SECRET_VERSION_NAME DURATION_SECS
import {GoogleAuth} from 'google-auth-library';
import {SecretManagerServiceClient} from '@google-cloud/secret-manager';

const [name, durationArg] = process.argv.slice(2);
const duration = Number(durationArg || '0') * 1000;
const endpoint = new URL(process.env.CLOUDSDK_API_ENDPOINT_OVERRIDES_SECRETMANAGER);
const out = {reads: 0, gax_reads: 0, tokens: [], errors: [], values: []};
const forbidden = ['GOOGLE_APPLICATION_CREDENTIALS', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN', 'AWS_PROFILE'].filter(k => k in process.env);
out.forbidden_env = forbidden;

const auth = new GoogleAuth({scopes: ['https://www.googleapis.com/auth/cloud-platform']});
const client = await auth.getClient();
out.client = client.constructor.name;
out.project = await auth.getProjectId().catch(e => `error: ${e.message}`);
const gax = new SecretManagerServiceClient({
  fallback: 'rest',
  apiEndpoint: endpoint.hostname,
  port: Number(endpoint.port),
  protocol: 'http',
});

const start = Date.now();
do {
  try {
    const res = await client.request({url: `${endpoint.origin}/v1/${name}:access`});
    out.values.push(Buffer.from(res.data.payload.data, 'base64').toString());
    out.reads += 1;
    const t = (await client.getAccessToken()).token;
    if (!out.tokens.includes(t)) out.tokens.push(t);
  } catch (e) {
    out.errors.push(`google-auth-library: ${e.message}`);
  }
  try {
    const [v] = await gax.accessSecretVersion({name});
    out.values.push(Buffer.from(v.payload.data).toString());
    out.gax_reads += 1;
  } catch (e) {
    out.errors.push(`@google-cloud/secret-manager: ${e.message}`);
  }
  await new Promise(r => setTimeout(r, 700));
} while (Date.now() - start < duration);
await gax.close();
// Distinct tokens are counted, never printed.
out.distinct_tokens = out.tokens.length;
delete out.tokens;
out.values = [...new Set(out.values)];
console.log(JSON.stringify(out));
