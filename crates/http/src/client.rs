//! The one HTTP client keyway uses, built once per command and shared by every
//! call. TLS verification uses the platform's root store, but loads it on the
//! first HTTPS certificate check rather than when the client is built: reading
//! the system store costs several milliseconds (on Debian, 146 files in
//! /etc/ssl/certs), which a command that talks only to loopback endpoints (the
//! local cloud, a metadata server, an ECS agent) would otherwise pay on every
//! start.

use keyway_core::{Env, vars};
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
        self.inner
            .get_or_init(|| rustls_platform_verifier::Verifier::new(self.provider.clone()))
            .as_ref()
            .map_err(Clone::clone)
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
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn tls_config() -> Option<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = Arc::new(LazyPlatformVerifier {
        provider: provider.clone(),
        inner: OnceLock::new(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Some(config)
}

/// Hosts never reached through a proxy, whatever NO_PROXY says: loopback, and
/// the link-local metadata and credential endpoints (EC2 IMDS and ECS at
/// 169.254.169.254 / 169.254.170.2, fd00:ec2::254, GCE's metadata server). Their
/// answers are credentials; a proxy has no business seeing them, and Google's
/// and AWS's own metadata clients do not use one either.
const ALWAYS_DIRECT: &str = "localhost,127.0.0.0/8,::1,169.254.0.0/16,fe80::/10,fd00:ec2::254,metadata.google.internal,metadata";

/// The proxies the environment asks for (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and
/// NO_PROXY, upper case first, as curl reads them), each excluding
/// [`ALWAYS_DIRECT`]. A malformed proxy URL is skipped with a warning that names
/// the variable (not its value, which may carry a password).
pub fn proxies(env: &Env) -> Vec<reqwest::Proxy> {
    let var = |name: &str| {
        env.non_empty(name)
            .or_else(|| env.non_empty(&name.to_ascii_lowercase()))
    };
    let direct = match var(vars::NO_PROXY) {
        Some(user) => format!("{ALWAYS_DIRECT},{user}"),
        None => ALWAYS_DIRECT.to_owned(),
    };
    let mut out = Vec::new();
    for name in [vars::HTTPS_PROXY, vars::HTTP_PROXY, vars::ALL_PROXY] {
        let Some(url) = var(name) else { continue };
        let made = match name {
            vars::HTTPS_PROXY => reqwest::Proxy::https(url),
            vars::HTTP_PROXY => reqwest::Proxy::http(url),
            _ => reqwest::Proxy::all(url),
        };
        match made {
            Ok(p) => out.push(p.no_proxy(reqwest::NoProxy::from_string(&direct))),
            Err(_) => tracing::warn!(variable = name, "ignoring a proxy URL that does not parse"),
        }
    }
    out
}

/// The HTTP client every command uses: lazy TLS roots, bounded connects, and the
/// environment's proxies except for metadata and credential endpoints.
pub fn client(env: &Env) -> reqwest::Client {
    let base = || {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy();
        for p in proxies(env) {
            b = b.proxy(p);
        }
        b
    };
    let mut b = base();
    if let Some(tls) = tls_config() {
        b = b.tls_backend_preconfigured(tls);
    }
    match b.build() {
        Ok(c) => c,
        Err(e) => {
            // Fall back to reqwest's own TLS set-up (eager roots): slower, equally safe.
            tracing::debug!(error = %e, "preconfigured TLS refused; using the default client");
            base().build().unwrap_or_default()
        }
    }
}

#[cfg(test)]
mod tests {
    use keyway_core::Env;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A loopback HTTP server that answers one request with 200 and reports its request line.
    fn one_shot() -> (String, mpsc::Receiver<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = l.accept() {
                let mut buf = [0u8; 4096];
                let n = s.read(&mut buf).unwrap_or(0);
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let _ = tx.send(text.lines().next().unwrap_or_default().to_owned());
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        (addr, rx)
    }

    fn get(env: &Env, url: &str) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            super::client(env)
                .get(url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    }

    #[test]
    fn proxies_carry_ordinary_requests_but_never_loopback_or_metadata_ones() {
        let (proxy, seen_by_proxy) = one_shot();
        let env = Env::new().with("HTTP_PROXY", &format!("http://{proxy}"));
        // An ordinary host goes through the proxy (which answers for it; no DNS lookup happens).
        assert_eq!(get(&env, "http://keyway-proxy-test.invalid/x"), 200);
        assert_eq!(
            seen_by_proxy
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("the proxy got no request"),
            "GET http://keyway-proxy-test.invalid/x HTTP/1.1"
        );

        // A loopback endpoint (where the local cloud, and a metadata emulator, live) is reached
        // directly even though the proxy is set and NO_PROXY does not mention it.
        let (proxy, seen_by_proxy) = one_shot();
        let (server, seen_by_server) = one_shot();
        let env = Env::new()
            .with("http_proxy", &format!("http://{proxy}"))
            .with("NO_PROXY", "example.com");
        assert_eq!(
            get(&env, &format!("http://{server}/computeMetadata/v1/")),
            200
        );
        assert_eq!(
            seen_by_server
                .recv_timeout(std::time::Duration::from_secs(5))
                .expect("the loopback server got no request"),
            "GET /computeMetadata/v1/ HTTP/1.1"
        );
        assert!(
            seen_by_proxy.try_recv().is_err(),
            "the proxy saw a loopback request"
        );
    }

    #[test]
    fn a_malformed_proxy_is_skipped() {
        let env = Env::new().with("HTTPS_PROXY", "http://[not a url");
        assert!(super::proxies(&env).is_empty());
    }

    #[test]
    fn the_preconfigured_tls_backend_is_accepted() {
        // A version mismatch between our rustls and reqwest's would make reqwest
        // refuse the backend; catch that here rather than by a slow fallback.
        let tls = super::tls_config().expect("rustls config");
        reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .build()
            .expect("reqwest accepts our rustls config");
    }
}
