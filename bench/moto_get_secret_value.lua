-- wrk script: Secrets Manager GetSecretValue against moto_server (moto does not check signatures).
wrk.method = "POST"
wrk.body = '{"SecretId":"bench-secret"}'
wrk.headers["Content-Type"] = "application/x-amz-json-1.1"
wrk.headers["X-Amz-Target"] = "secretsmanager.GetSecretValue"
wrk.headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/us-east-1/secretsmanager/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
