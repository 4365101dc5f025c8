//! TLS against a local collector with a self-signed certificate made here: rejected by the
//! default client (certificate verification), with a clear reason in the failure report and
//! nothing lost; delivered by a user-supplied client that trusts that certificate.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::support::{
    assert_delivered, events, flush, flush_within, record_failures, stats, track_all, BuilderExt,
    Seen,
};
use actix_web::{web, App, HttpResponse, HttpServer};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use snowplow_actix::transport::TransportError;
use snowplow_actix::{
    emitter::{FailureReason, Flush},
    EmitterBuilder,
};

/// A self-signed certificate for `127.0.0.1` and its key.
struct SelfSigned {
    cert: CertificateDer<'static>,
    key: PrivatePkcs8KeyDer<'static>,
}

fn self_signed() -> SelfSigned {
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
        .expect("a self-signed certificate");
    SelfSigned {
        cert: certified.cert.der().clone(),
        key: PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der()),
    }
}

/// The eids of every event of every POST the TLS collector received, in order.
type Received = Arc<Mutex<Vec<String>>>;

/// An HTTPS collector on `127.0.0.1` serving `certificate`: answers every POST 200 and
/// records the eids of its events. Returns its endpoint, what it received, and its handle.
fn start_tls_collector(
    certificate: &SelfSigned,
) -> (String, Received, actix_web::dev::ServerHandle) {
    let config = rustls::ServerConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![certificate.cert.clone()],
            PrivateKeyDer::Pkcs8(certificate.key.clone_key()),
        )
        .expect("a valid server certificate");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let sink = received.clone();
    let server = HttpServer::new(move || {
        let sink = sink.clone();
        App::new().default_service(web::to(move |body: web::Bytes| {
            let sink = sink.clone();
            async move {
                let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let eids = body["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|event| event["eid"].as_str().unwrap().to_owned());
                sink.lock().unwrap().extend(eids);
                HttpResponse::Ok().body("ok")
            }
        }))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(0)
    .listen_rustls_0_23(listener, config)
    .expect("listen with TLS")
    .run();
    let handle = server.handle();
    actix_rt::spawn(server);
    (format!("https://{addr}"), received, handle)
}

/// An awc client whose rustls configuration trusts `certificate` only.
fn client_trusting(certificate: CertificateDer<'static>) -> awc::Client {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certificate).expect("a usable trust anchor");
    let config = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    awc::Client::builder()
        .connector(awc::Connector::new().rustls_0_23(Arc::new(config)))
        .finish()
}

/// The crypto provider of this file's TLS configurations, named rather than installed as
/// the process default: the test installs nothing for the other tests of the binary. (The
/// crate's own default client installs ring as the process default when none is; ring is
/// the only provider compiled in, so whichever test gets there first, it is the same one.)
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[actix_rt::test]
async fn a_self_signed_collector_is_rejected_by_default_with_a_certificate_error_and_nothing_lost()
{
    let certificate = self_signed();
    let (endpoint, received, server) = start_tls_collector(&certificate);
    let (builder, mut failures) = record_failures(
        EmitterBuilder::new(endpoint.as_str()).retrying_fast(Duration::from_millis(20)),
    );
    let emitter = builder.started();
    let ids = track_all(&emitter, events(3));
    emitter.do_send(Flush::default());

    // Two attempts, each refused at the handshake: reported, retried, the same events.
    for _ in 0..2 {
        let Seen {
            reason,
            will_retry,
            dropped,
            eids,
            ..
        } = failures.next().await;
        let FailureReason::Transport(TransportError::Connection(text)) = &reason else {
            panic!("not a connection error: {reason:?}");
        };
        assert!(
            text.contains("invalid peer certificate: UnknownIssuer"),
            "the report names the certificate problem: {text}"
        );
        assert_eq!((will_retry, dropped), (true, None));
        assert_eq!(eids, ids);
    }

    let report = flush_within(&emitter, Duration::from_millis(50)).await;
    assert_eq!((report.sent, report.queued, report.timed_out), (0, 3, true));
    assert_eq!(report.dropped.total(), 0);
    let stats = stats(&emitter).await;
    assert_eq!((stats.received, stats.sent), (3, 0));
    assert_eq!(stats.dropped.total(), 0);
    assert_eq!(stats.queued + stats.in_flight, 3);
    assert!(stats.retried >= 6, "{stats:#?}");
    assert!(
        received.lock().unwrap().is_empty(),
        "no request got past the handshake"
    );
    server.stop(false).await;
}

#[actix_rt::test]
async fn a_client_factory_trusting_the_certificate_delivers_over_tls() {
    let certificate = self_signed();
    let (endpoint, received, server) = start_tls_collector(&certificate);
    let trusted = certificate.cert.clone();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = failures.clone();
    let emitter = EmitterBuilder::new(endpoint.as_str())
        .client_factory(move || client_trusting(trusted.clone()))
        .on_failure(move |failure| seen.lock().unwrap().push(failure.reason.clone()))
        .started();
    let ids = track_all(&emitter, events(3));

    let report = flush(&emitter).await;

    assert_delivered(&report, 3);
    assert_eq!(*received.lock().unwrap(), ids);
    assert!(failures.lock().unwrap().is_empty());
    // The pooled TLS connection carries the next batch too.
    let more = track_all(&emitter, events(2));
    let report = flush(&emitter).await;
    assert_eq!((report.sent, report.queued), (2, 0));
    assert_eq!(received.lock().unwrap()[3..], more);
    let stats = stats(&emitter).await;
    assert_eq!(
        (stats.received, stats.sent, stats.retried, stats.requests),
        (5, 5, 0, 2)
    );
    server.stop(false).await;
}
