//! The one HTTP client keyway uses. TLS verification uses the platform's root
//! store, but loads it on the first HTTPS certificate check rather than when
//! the client is built: reading the system store costs several milliseconds
//! (on Debian, 146 files in /etc/ssl/certs), which a command that talks only to
//! loopback endpoints (the local cloud, a metadata server, an ECS agent) would
//! otherwise pay on every start.

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The platform verifier, created on first use.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner.get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone())).as_ref().map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner()?.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config() -> Option<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(LazyPlatformVerifier { provider: provider.clone(), inner: OnceLock::new() });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(config)
}

pub fn client() -> reqwest::Client {
    let mut b = reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).pool_idle_timeout(Duration::from_secs(30));
    if let Some(tls) = tls_config() {
        b = b.tls_backend_preconfigured(tls);
    }
    match b.build() {
        Ok(c) => c,
        Err(e) => {
            // Fall back to reqwest's own TLS set-up (eager roots): slower, equally safe.
            tracing::debug!(error = %e, "preconfigured TLS refused; using the default client");
            reqwest::Client::builder().connect_timeout(Duration::from_secs(5)).build().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_preconfigured_tls_backend_is_accepted() {
        // A version mismatch between our rustls and reqwest's would make reqwest
        // refuse the backend; catch that here rather than by a slow fallback.
        let tls = super::tls_config().expect("rustls config");
        reqwest::Client::builder().tls_backend_preconfigured(tls).build().expect("reqwest accepts our rustls config");
    }
}
