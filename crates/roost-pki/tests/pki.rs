//! Real sockets, real TLS: the DC PKI end to end.

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;
use roost_pki::{
    CertInfo, ClientIdentity, DEFAULT_SUBCLOUD_CERT_DAYS, DcCa, PeerIdentity, TlsConnectInfo,
    Validity, cert_info, check_ca_fingerprint, client_config, https_client, needs_renewal,
    needs_renewal_after, pinned_client_config, serve_tls, server_config,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use tokio::io::AsyncWriteExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const DAY: Duration = Duration::from_secs(86_400);

fn server_names() -> Vec<String> {
    vec!["localhost".to_string(), "127.0.0.1".to_string()]
}

struct TestServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl TestServer {
    async fn start(config: Arc<rustls::ServerConfig>) -> TestServer {
        let app = Router::new()
            .route(
                "/whoami",
                get(|peer: PeerIdentity| async move { peer.cn().unwrap_or("<none>").to_string() }),
            )
            .route(
                "/fingerprint",
                get(
                    |ConnectInfo(info): ConnectInfo<TlsConnectInfo>| async move {
                        format!(
                            "{} {}",
                            info.remote_addr.ip(),
                            info.peer.map(|p| p.fingerprint).unwrap_or_default()
                        )
                    },
                ),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve_tls(listener, config, app, async move {
            let _ = stopped.await;
        }));
        TestServer {
            addr,
            stop: Some(stop),
            task,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("server stops after the shutdown signal")
            .unwrap()
            .expect("serve_tls returns Ok");
    }
}

/// A System Controller: CA, its server cert, optional client auth.
struct Sc {
    _dir: tempfile::TempDir,
    ca: DcCa,
    server_chain: String,
    server_key: String,
}

impl Sc {
    fn new(name: &str) -> Sc {
        let dir = tempfile::tempdir().unwrap();
        let ca = DcCa::load_or_create(&dir.path().join("pki"), name).unwrap();
        let (server_chain, server_key) = ca.issue_server_cert(&server_names(), 365).unwrap();
        Sc {
            _dir: dir,
            ca,
            server_chain,
            server_key,
        }
    }

    fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        server_config(
            &self.server_chain,
            &self.server_key,
            self.ca.ca_pem(),
            require_client_cert,
        )
        .unwrap()
    }

    /// A subcloud enrolled under `cn`: (cert_pem, key_pem).
    fn enroll(&self, cn: &str) -> (String, String) {
        let id = ClientIdentity::generate(cn).unwrap();
        let cert = self
            .ca
            .sign_client_csr(&id.csr_pem, cn, DEFAULT_SUBCLOUD_CERT_DAYS)
            .unwrap();
        (cert, id.key_pem)
    }

    fn client(&self, identity: Option<&(String, String)>) -> reqwest::Client {
        let identity = identity.map(|(c, k)| (c.as_str(), k.as_str()));
        https_client(client_config(self.ca.ca_pem(), identity).unwrap()).unwrap()
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> reqwest::Result<(u16, String)> {
    let resp = client.get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.text().await?))
}

/// Asserts the request fails, and that the error chain names `why` (so a
/// test cannot pass for an unrelated reason).
async fn expect_refused(client: &reqwest::Client, url: &str, why: &str) {
    let err = match client.get(url).send().await {
        Ok(resp) => panic!("expected a TLS failure ({why}), got HTTP {}", resp.status()),
        Err(e) => e,
    };
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(e) = source {
        chain.push_str(" <- ");
        chain.push_str(&e.to_string());
        source = e.source();
    }
    assert!(chain.contains(why), "expected {why:?} in: {chain}");
}

#[test]
fn the_ca_is_created_once_and_reloaded_with_the_same_fingerprint() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("dc-pki");
    let ca = DcCa::load_or_create(&dir, "roost-dc-root").unwrap();
    let fp = ca.fingerprint();
    assert_eq!(fp.len(), 64);
    assert!(
        fp.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );

    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("ca.key")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert!(
        std::fs::read_to_string(dir.join("ca.key"))
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let no_leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(no_leftovers.is_empty(), "{no_leftovers:?}");

    let info = ca.info();
    assert_eq!(info.cn.as_deref(), Some("roost-dc-root"));
    let ten_years = info.not_after - info.not_before;
    assert!(
        (3649 * 86_400..=3651 * 86_400).contains(&ten_years),
        "{ten_years}"
    );

    // Reload, even under another name: the same CA.
    let again = DcCa::load_or_create(&dir, "some-other-name").unwrap();
    assert_eq!(again.fingerprint(), fp);
    assert_eq!(again.ca_pem(), ca.ca_pem());
    assert_eq!(again.info().cn.as_deref(), Some("roost-dc-root"));

    // A reloaded CA still signs certificates that chain to the original.
    let id = ClientIdentity::generate("sc1").unwrap();
    let cert = again.sign_client_csr(&id.csr_pem, "sc1", 30).unwrap();
    assert_eq!(
        cert_info(&cert).unwrap().issuer_cn.as_deref(),
        Some("roost-dc-root")
    );
}

#[test]
fn a_loosened_key_file_is_tightened_back_to_0600_on_load() {
    let tmp = tempfile::tempdir().unwrap();
    let fp = DcCa::load_or_create(tmp.path(), "ca")
        .unwrap()
        .fingerprint();
    let key = tmp.path().join("ca.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let ca = DcCa::load_or_create(tmp.path(), "ca").unwrap();
    assert_eq!(ca.fingerprint(), fp);
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_ca_certificate_without_its_key_is_never_silently_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    DcCa::load_or_create(tmp.path(), "ca").unwrap();
    std::fs::remove_file(tmp.path().join("ca.key")).unwrap();
    let err = DcCa::load_or_create(tmp.path(), "ca").unwrap_err();
    assert!(err.to_string().contains("refusing"), "{err}");
}

#[test]
fn a_key_that_does_not_match_the_ca_certificate_is_refused() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    DcCa::load_or_create(a.path(), "a").unwrap();
    DcCa::load_or_create(b.path(), "b").unwrap();
    std::fs::copy(b.path().join("ca.key"), a.path().join("ca.key")).unwrap();
    let err = DcCa::load_or_create(a.path(), "a").unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn a_client_cert_signed_from_a_csr_carries_the_forced_cn_and_verifies() {
    let sc = Sc::new("dc-root");
    // The subcloud asks for a CN it has no right to: the SC decides.
    let id = ClientIdentity::generate("systemcontroller").unwrap();
    assert!(
        id.csr_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----")
    );
    let cert_pem = sc
        .ca
        .sign_client_csr(&id.csr_pem, "subcloud1", DEFAULT_SUBCLOUD_CERT_DAYS)
        .unwrap();

    let info = cert_info(&cert_pem).unwrap();
    assert_eq!(info.cn.as_deref(), Some("subcloud1"));
    assert_eq!(info.issuer_cn.as_deref(), Some("dc-root"));
    let lifetime = info.not_after - info.not_before;
    // 30 days plus the 5-minute clock-skew allowance.
    assert_eq!(lifetime, 30 * 86_400 + 300);
    assert!(info.is_valid_at(SystemTime::now()));
    assert_eq!(info.serial.len(), 32);

    // clientAuth only, not a CA, no SAN copied from the CSR.
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap();
    let (_, x509) = x509_parser::parse_x509_certificate(&der).unwrap();
    let eku = x509.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth);
    assert!(!x509.is_ca());
    assert!(x509.subject_alternative_name().unwrap().is_none());

    // It verifies as a client certificate against the DC CA.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(sc.ca.ca_pem().as_bytes()).unwrap())
        .unwrap();
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), roost_pki::provider())
            .build()
            .unwrap();
    verifier
        .verify_client_cert(&der, &[], UnixTime::now())
        .expect("signed client certificate verifies against the DC CA");
}

#[test]
fn a_csr_that_is_not_a_csr_and_an_empty_subject_are_rejected() {
    let sc = Sc::new("dc-root");
    assert!(sc.ca.sign_client_csr("garbage", "subcloud1", 30).is_err());
    let id = ClientIdentity::generate("x").unwrap();
    assert!(sc.ca.sign_client_csr(&id.csr_pem, "", 30).is_err());
    assert!(sc.ca.sign_client_csr(&id.csr_pem, "subcloud1", 0).is_err());
    assert!(sc.ca.issue_server_cert(&[], 30).is_err());
}

#[test]
fn an_rsa_csr_is_rejected_but_the_ca_is_shareable_across_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<DcCa>();

    let sc = Sc::new("dc-root");
    let rsa = rcgen::KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, rcgen::RsaKeySize::_2048)
        .unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&rsa)
        .unwrap()
        .pem()
        .unwrap();
    let err = sc.ca.sign_client_csr(&csr, "subcloud1", 30).unwrap_err();
    assert!(err.to_string().contains("not accepted"), "{err}");
}

#[tokio::test]
async fn an_mtls_round_trip_shows_the_handler_the_client_cn() {
    let sc = Sc::new("dc-root");
    let server = TestServer::start(sc.server_config(false)).await;
    let identity = sc.enroll("subcloud1");
    let client = sc.client(Some(&identity));

    let (status, body) = get_text(&client, &server.url("/whoami")).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "subcloud1"));

    let (_, body) = get_text(&client, &server.url("/fingerprint"))
        .await
        .unwrap();
    let expected = cert_info(&identity.0).unwrap().fingerprint;
    assert_eq!(body, format!("127.0.0.1 {expected}"));
    server.stop().await;
}

#[tokio::test]
async fn without_a_client_cert_the_handler_sees_no_identity_when_auth_is_optional() {
    let sc = Sc::new("dc-root");
    let server = TestServer::start(sc.server_config(false)).await;
    let (status, body) = get_text(&sc.client(None), &server.url("/whoami"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "<none>"));
    server.stop().await;
}

#[tokio::test]
async fn without_a_client_cert_the_handshake_fails_when_auth_is_required() {
    let sc = Sc::new("dc-root");
    let server = TestServer::start(sc.server_config(true)).await;
    expect_refused(
        &sc.client(None),
        &server.url("/whoami"),
        "CertificateRequired",
    )
    .await;
    let identity = sc.enroll("subcloud2");
    let (status, body) = get_text(&sc.client(Some(&identity)), &server.url("/whoami"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "subcloud2"));
    server.stop().await;
}

#[tokio::test]
async fn a_client_cert_from_another_ca_is_refused_and_the_listener_survives() {
    let sc = Sc::new("dc-root");
    let rogue = Sc::new("rogue-root");
    let server = TestServer::start(sc.server_config(false)).await;

    // Trusts the real SC, but presents a certificate from another CA.
    let rogue_identity = rogue.enroll("subcloud1");
    let client = https_client(
        client_config(sc.ca.ca_pem(), Some((&rogue_identity.0, &rogue_identity.1))).unwrap(),
    )
    .unwrap();
    expect_refused(&client, &server.url("/whoami"), "UnknownCA").await;

    // Garbage and plain HTTP on the TLS port do not kill the listener either.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    drop(tcp);
    let silent = tokio::net::TcpStream::connect(server.addr).await.unwrap();

    let good = sc.enroll("subcloud1");
    let (status, body) = get_text(&sc.client(Some(&good)), &server.url("/whoami"))
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "subcloud1"));
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_dc_ca_refuses_the_server() {
    let sc = Sc::new("dc-root");
    let other = Sc::new("other-root");
    let server = TestServer::start(sc.server_config(false)).await;
    expect_refused(&other.client(None), &server.url("/whoami"), "UnknownIssuer").await;
    server.stop().await;
}

#[tokio::test]
async fn a_server_cert_for_another_name_is_refused() {
    let sc = Sc::new("dc-root");
    let (chain, key) = sc
        .ca
        .issue_server_cert(&["sc.example.invalid".to_string()], 30)
        .unwrap();
    let config = server_config(&chain, &key, sc.ca.ca_pem(), false).unwrap();
    let server = TestServer::start(config).await;
    expect_refused(
        &sc.client(None),
        &server.url("/whoami"),
        "not valid for name",
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn the_pinned_enrollment_client_connects_only_when_the_fingerprint_matches() {
    let sc = Sc::new("dc-root");
    let server = TestServer::start(sc.server_config(false)).await;

    let pinned = https_client(pinned_client_config(&sc.ca.fingerprint()).unwrap()).unwrap();
    let (status, body) = get_text(&pinned, &server.url("/whoami")).await.unwrap();
    assert_eq!((status, body.as_str()), (200, "<none>"));

    // The `openssl x509 -fingerprint -sha256` form is accepted too.
    let colon_form = sc
        .ca
        .fingerprint()
        .to_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(":");
    let pinned2 = https_client(pinned_client_config(&colon_form).unwrap()).unwrap();
    assert_eq!(
        get_text(&pinned2, &server.url("/whoami")).await.unwrap().0,
        200
    );

    // Another CA's fingerprint: refused.
    let other = Sc::new("other-root");
    let wrong = https_client(pinned_client_config(&other.ca.fingerprint()).unwrap()).unwrap();
    expect_refused(&wrong, &server.url("/whoami"), "UnknownIssuer").await;

    // The pinned fingerprint of the server's own leaf is not a CA pin.
    let leaf_fp = cert_info(&sc.server_chain).unwrap().fingerprint;
    let leaf_pin = https_client(pinned_client_config(&leaf_fp).unwrap()).unwrap();
    expect_refused(&leaf_pin, &server.url("/whoami"), "UnknownIssuer").await;

    assert!(pinned_client_config("not-a-fingerprint").is_err());

    // After enrolling, the subcloud checks the CA PEM it was handed.
    check_ca_fingerprint(sc.ca.ca_pem(), &colon_form).unwrap();
    assert!(check_ca_fingerprint(other.ca.ca_pem(), &sc.ca.fingerprint()).is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_server_that_presents_a_cert_from_an_impostor_ca_with_the_pinned_ca_appended_is_refused()
{
    // An impostor appends the real (public) CA cert to its own chain: the
    // fingerprint matches, but its leaf does not verify against that CA.
    let sc = Sc::new("dc-root");
    let impostor = Sc::new("impostor-root");
    let (leaf_chain, key) = impostor.ca.issue_server_cert(&server_names(), 30).unwrap();
    let leaf_only = leaf_chain
        .split_inclusive("-----END CERTIFICATE-----\n")
        .next()
        .unwrap()
        .to_string();
    let forged_chain = format!("{leaf_only}{}", sc.ca.ca_pem());
    let config = server_config(&forged_chain, &key, impostor.ca.ca_pem(), false).unwrap();
    let server = TestServer::start(config).await;
    let pinned = https_client(pinned_client_config(&sc.ca.fingerprint()).unwrap()).unwrap();
    expect_refused(&pinned, &server.url("/whoami"), "UnknownIssuer").await;
    server.stop().await;
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused() {
    let sc = Sc::new("dc-root");
    let server = TestServer::start(sc.server_config(false)).await;
    let id = ClientIdentity::generate("subcloud1").unwrap();
    let now = SystemTime::now();
    let expired = sc
        .ca
        .sign_client_csr_with(
            &id.csr_pem,
            "subcloud1",
            Validity::between(now - 40 * DAY, now - 10 * DAY).unwrap(),
        )
        .unwrap();
    assert!(!cert_info(&expired).unwrap().is_valid_at(now));
    let client = sc.client(Some(&(expired, id.key_pem)));
    expect_refused(&client, &server.url("/whoami"), "CertificateExpired").await;
    server.stop().await;
}

#[tokio::test]
async fn an_expired_server_certificate_is_refused_by_both_client_kinds() {
    let sc = Sc::new("dc-root");
    let now = SystemTime::now();
    let (chain, key) = sc
        .ca
        .issue_server_cert_with(
            &server_names(),
            Validity::between(now - 40 * DAY, now - DAY).unwrap(),
        )
        .unwrap();
    let config = server_config(&chain, &key, sc.ca.ca_pem(), false).unwrap();
    let server = TestServer::start(config).await;
    expect_refused(
        &sc.client(None),
        &server.url("/whoami"),
        "certificate expired",
    )
    .await;
    let pinned = https_client(pinned_client_config(&sc.ca.fingerprint()).unwrap()).unwrap();
    expect_refused(&pinned, &server.url("/whoami"), "certificate expired").await;
    server.stop().await;
}

#[test]
fn renewal_is_due_once_two_thirds_of_the_lifetime_have_elapsed() {
    let info = CertInfo {
        cn: Some("subcloud1".into()),
        issuer_cn: None,
        serial: "01".into(),
        not_before: 1_000_000,
        not_after: 1_000_000 + 30 * 86_400,
        fingerprint: String::new(),
    };
    let at = |secs: i64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs as u64);
    let two_thirds = 1_000_000 + 20 * 86_400;
    assert!(!needs_renewal(&info, at(1_000_000)));
    assert!(!needs_renewal(&info, at(two_thirds - 1)));
    assert!(needs_renewal(&info, at(two_thirds)));
    assert!(needs_renewal(&info, at(1_000_000 + 31 * 86_400)), "expired");
    assert!(!needs_renewal_after(&info, at(two_thirds), 0.9));
    assert!(needs_renewal_after(&info, at(1_000_000), 0.0));

    let broken = CertInfo {
        not_after: info.not_before,
        ..info
    };
    assert!(needs_renewal(&broken, at(0)));

    // A freshly signed 30-day subcloud certificate: not now, but in 21 days.
    let sc = Sc::new("dc-root");
    let (cert, _) = sc.enroll("subcloud1");
    let fresh = cert_info(&cert).unwrap();
    let now = SystemTime::now();
    assert!(!needs_renewal(&fresh, now));
    assert!(!needs_renewal(&fresh, now + 19 * DAY));
    assert!(needs_renewal(&fresh, now + 21 * DAY));
}
