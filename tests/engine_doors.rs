//! End-to-end tests of `chimera serve`'s doors: limits, TLS and mutual TLS, plaintext, the HTTP
//! door, the bounds on connections, and the CUDA image's commands.

// Shared with the other tests, which use more of them.
#[allow(dead_code)]
mod common;
#[allow(dead_code)]
#[path = "common/engine_client.rs"]
mod engine_client;
#[allow(dead_code)]
#[path = "common/http_client.rs"]
mod http_client;
#[allow(dead_code)]
#[path = "common/served.rs"]
mod served;

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use chimera_client::JobCall;
use chimera_maml::DEFAULT_MAX_BYTES;
use chimera_proto::v1::engine_client::EngineClient;
use chimera_proto::v1::{GetRequest, JobState, SubmitRequest, WatchRequest};
use common::{chimera, failure, ok, repo, work_dir};
use engine_client::*;
use http_client::{exchange, http, http_door, json};
use served::Served;
use tonic::transport::Channel;

/// A connection to `addr` from `from`, a loopback address other than the tests' 127.0.0.1.
fn connect_from(from: [u8; 4], addr: &str) -> std::net::TcpStream {
    runtime().block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind((std::net::IpAddr::from(from), 0).into())
            .unwrap();
        let stream = socket.connect(addr.parse().unwrap()).await.unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    })
}

/// A test CA and the PEM files it signs: `NAME.pem` and `NAME.key` in `dir`.
struct TestCa(rcgen::CertifiedIssuer<'static, rcgen::KeyPair>);

impl TestCa {
    fn new(dir: &Path) -> Self {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "chimera test CA");
        let ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap())
            .unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self(ca)
    }

    /// A certificate for `names` (its subject alternative names), for a server or a client.
    fn issue(&self, dir: &Path, file: &str, names: &[&str], client: bool) {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        params.extended_key_usages = vec![match client {
            true => rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            false => rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        }];
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.0).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    }
}

async fn tls_client(
    url: &str,
    dir: &Path,
    client_cert: Option<&str>,
) -> Result<EngineClient<Channel>, tonic::transport::Error> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |name: &str| std::fs::read(dir.join(name)).unwrap();
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read("ca.pem")));
    if let Some(name) = client_cert {
        tls = tls.identity(Identity::from_pem(
            read(&format!("{name}.pem")),
            read(&format!("{name}.key")),
        ));
    }
    let channel = Channel::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)?
        .connect()
        .await?;
    Ok(EngineClient::new(channel))
}

/// One HTTP/1.1 request over TLS to `addr`, trusting `dir`'s test CA, with the client
/// certificate `NAME.pem` if given: the status code and the body, or what failed.
fn https(
    addr: &str,
    dir: &Path,
    client_cert: Option<&str>,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match client_cert {
        None => builder.with_no_client_auth(),
        Some(name) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_file(dir.join(format!("{name}.pem"))).unwrap()],
                PrivateKeyDer::from_pem_file(dir.join(format!("{name}.key"))).unwrap(),
            )
            .unwrap(),
    };
    let connection = rustls::ClientConnection::new(
        std::sync::Arc::new(config),
        ServerName::try_from("localhost").unwrap(),
    )
    .map_err(std::io::Error::other)?;
    let mut stream =
        rustls::StreamOwned::new(connection, std::net::TcpStream::connect(addr).unwrap());
    exchange(&mut stream, "localhost", method, path, body)
}

/// What a server that requires a client certificate says to a TLS client that has none: the
/// handshake is read to its end and nothing is written, so the server's alert is read rather than
/// lost to a write into the connection it has closed.
fn alert_without_a_certificate(addr: &str, dir: &Path) -> String {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").unwrap();
    let mut connection = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    loop {
        match connection.complete_io(&mut tcp) {
            Err(error) => return error.to_string(),
            Ok((0, 0)) => return "the connection ended with no alert".into(),
            Ok(_) => {}
        }
    }
}

/// The JSON array of a Dockerfile instruction (`CMD [...]`, `HEALTHCHECK ... CMD [...]`), its
/// continuation lines joined.
fn dockerfile_array(dockerfile: &str, instruction: &str) -> Vec<String> {
    let joined = dockerfile.replace("\\\n", " ");
    let line = joined
        .lines()
        .find(|l| l.starts_with(instruction))
        .unwrap_or_else(|| panic!("no {instruction} in Dockerfile.cuda"));
    let array = &line[line.find('[').unwrap()..];
    serde_json::from_str(array).unwrap()
}

/// Whether the server closed `stream` within `within`: what it sends before is read and let go.
fn closed_by_server(stream: &mut std::net::TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 1024];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
    false
}

#[test]
fn limits_refuse_a_large_request_a_fast_or_busy_client_and_too_many_streams() {
    let dir = work_dir("engine-limits");
    let data = dir.join("data");
    let busy = trusted_key(&data, &dir, "busy", "*");
    let other = trusted_key(&data, &dir, "other", "*");
    let flags = [
        "--client-rate",
        "2",
        "--client-burst",
        "3",
        "--max-jobs-per-client",
        "4",
        "--max-streams",
        "2",
        "--max-streams-per-source",
        "1",
        "--max-connections-per-source",
        "3",
        "--http-listen",
        "127.0.0.1:0",
        "--refusals-per-source",
        "1",
        "--request-memory",
        "0.5",
    ];
    let served = Served::start_with(&data, &flags);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let job = |i: usize| training_job(&format!("urn:uuid:limits-{i}"), 300);

        let (code, message) = match client
            .submit(SubmitRequest {
                document: vec![b'#'; 2 << 20],
            })
            .await
        {
            Err(status) => (status.code(), status.message().to_owned()),
            Ok(reply) => panic!("a 2 MiB request was taken: {reply:?}"),
        };
        assert_eq!(code, tonic::Code::OutOfRange, "{message}");
        assert!(message.contains("too large"), "{message}");
        // Within the size limit, but more than the half MiB that messages still arriving may
        // hold in this engine.
        let (code, reason) = refusal(&mut client, vec![b'#'; 600 << 10]).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "ENGINE_BUSY")
        );
        let door = http_door(&served, "http");
        let (code, body) = http(&door, "POST", "/execute", &vec![b'#'; 600 << 10]);
        assert_eq!(
            (code, &json(&body)["reason"]),
            (429, &"ENGINE_BUSY".into()),
            "{body}"
        );

        // A burst of three, then the bucket is empty (signed beforehand: a token comes every
        // half second).
        let documents: Vec<Vec<u8>> = (0..5).map(|i| signed(&job(i), &busy)).collect();
        let mut ids = Vec::new();
        for document in &documents[..3] {
            ids.push(submit(&mut client, document.clone()).await.id);
        }
        let (code, reason) = refusal(&mut client, documents[3].clone()).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "RATE_LIMITED")
        );
        // Another client has its own.
        let theirs = submit(&mut client, signed(&job(100), &other)).await;

        // Half a second later, one more token: a fourth unfinished job, the most.
        tokio::time::sleep(Duration::from_millis(600)).await;
        ids.push(submit(&mut client, documents[3].clone()).await.id);
        tokio::time::sleep(Duration::from_millis(600)).await;
        let (code, reason) = refusal(&mut client, documents[4].clone()).await;
        assert_eq!(
            (code, reason.as_str()),
            (tonic::Code::ResourceExhausted, "TOO_MANY_JOBS")
        );
        // One ends: its place is free.
        cancel(&mut client, &busy, &ids[0]).await.unwrap();
        finished(&mut client, &busy, &ids[0]).await;
        tokio::time::sleep(Duration::from_millis(600)).await;
        submit(&mut client, documents[4].clone()).await;

        // One stream open from a source, its most; two in all, the most; a third is refused until
        // one closes.
        let watch = |id: &str| {
            proved(
                WatchRequest { job_id: id.into() },
                &busy,
                JobCall::Watch,
                id,
            )
        };
        let url = served.url.clone();
        let from = |last: u8| {
            let url = url.clone();
            async move {
                let endpoint = tonic::transport::Endpoint::from_shared(url).unwrap();
                let local = std::net::IpAddr::from([127, 0, 0, last]);
                let channel = endpoint.local_address(Some(local)).connect().await.unwrap();
                EngineClient::new(channel)
            }
        };
        let too_many = |refused: tonic::Status, says: &str| {
            assert_eq!(
                chimera_client::reason_of(&refused).as_deref(),
                Some("TOO_MANY_STREAMS"),
                "{refused:?}"
            );
            assert!(refused.message().contains(says), "{refused:?}");
        };
        let first = client.watch(watch(&ids[1])).await.unwrap().into_inner();
        too_many(
            client.watch(watch(&ids[2])).await.unwrap_err(),
            "127.0.0.1 has 1",
        );
        let (mut second, mut third) = (from(2).await, from(3).await);
        let _second = second.watch(watch(&ids[2])).await.unwrap().into_inner();
        too_many(
            third.watch(watch(&ids[3])).await.unwrap_err(),
            "the engine has 2",
        );
        drop(first);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let watch_theirs = WatchRequest {
                job_id: theirs.id.clone(),
            };
            match client
                .watch(proved(watch_theirs, &other, JobCall::Watch, &theirs.id))
                .await
            {
                Ok(_) => break,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(status) => panic!("the closed stream's place was not freed: {status:?}"),
            }
        }
    });

    // One source holds at most three connections at each door; its further ones are closed at
    // once (long before the 15 s a silent client is given), and another source is served.
    let grpc = served.url.trim_start_matches("http://").to_owned();
    for door in [grpc.as_str(), &http_door(&served, "http")] {
        let mut held = Vec::new();
        let refused = loop {
            let mut stream = std::net::TcpStream::connect(door).unwrap();
            if closed_by_server(&mut stream, Duration::from_secs(1)) {
                break held.len();
            }
            held.push(stream);
            assert!(
                held.len() <= 3,
                "{door} took a fourth connection from one source"
            );
        };
        // The engine may still hold the gRPC client's connection, closed above.
        assert!((2..=3).contains(&refused), "{door}: closed after {refused}");
        let mut other = connect_from([127, 0, 0, 2], door);
        assert!(
            !closed_by_server(&mut other, Duration::from_secs(1)),
            "{door}"
        );
    }
    let (code, _) = exchange(
        &mut connect_from([127, 0, 0, 3], &http_door(&served, "http")),
        "x",
        "GET",
        "/health",
        b"",
    )
    .unwrap();
    assert_eq!(code, 200);
    let metrics = served.scrape_metrics();
    for door in ["door=\"grpc\"", "door=\"http\""] {
        let closed = series(
            &metrics,
            "chimera_connections_over_source_limit_total",
            &[door],
        );
        assert!(closed.is_some_and(|n| n >= 1.0), "{door}: {closed:?}");
        let most = series(&metrics, "chimera_connections_max_per_source", &[door]);
        assert_eq!(most, Some(3.0), "{door}");
    }

    // Documents refused at admission: five seconds' worth from one source (at one a second), then
    // its submissions are refused unread, even a good one; another source is not held up.
    let good = |i: usize| signed(&training_job(&format!("urn:uuid:limits-{i}"), 300), &other);
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        for _ in 0..5 {
            let (_, reason) = refusal(&mut client, b"not a MAML document".to_vec()).await;
            assert_eq!(reason, "MALFORMED");
        }
        for document in [b"not a MAML document".to_vec(), good(200)] {
            let (code, reason) = refusal(&mut client, document).await;
            assert_eq!(
                (code, reason.as_str()),
                (tonic::Code::ResourceExhausted, "TOO_MANY_REFUSED")
            );
        }
    });
    let door = http_door(&served, "http");
    let mut elsewhere = connect_from([127, 0, 0, 3], &door);
    let (code, body) =
        exchange(&mut elsewhere, "x", "POST", "/execute?wait=0", &good(201)).unwrap();
    assert!([200, 202].contains(&code), "{code}: {body}");
}

#[test]
fn mutual_tls_admits_only_clients_whose_certificate_names_a_trusted_key() {
    let dir = work_dir("engine-tls");
    let data = dir.join("data");
    let data_arg = data.to_str().unwrap();
    let lab = trusted_key(&data, &dir, "lab", "*");
    trusted_key(&data, &dir, "carol", "*");
    let ca = TestCa::new(&dir);
    ca.issue(&dir, "server", &["localhost", "127.0.0.1"], false);
    ca.issue(&dir, "lab", &["lab"], true);
    ca.issue(&dir, "carol", &["carol"], true);
    ca.issue(&dir, "stranger", &["stranger"], true);
    let file = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let (cert, key, client_ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    let served = Served::start_with(
        &data,
        &[
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "--tls-client-ca",
            &client_ca,
            "--http-listen",
            "127.0.0.1:0",
            "--refusals-per-source",
            "1",
        ],
    );
    let url = served.url.replace("http://", "https://");
    let door = http_door(&served, "https");
    runtime().block_on(async {
        let mut client = tls_client(&url, &dir, Some("lab")).await.unwrap();
        let bell = document(
            "urn:uuid:over-tls",
            "quantum_circuit",
            "",
            "shots: 10",
            &[("qasm", BELL)],
        );
        // A client known by its certificate is not held back by its address's refusals (a
        // gateway relays many users' documents): more than five seconds' worth at one a second.
        for _ in 0..8 {
            let (_, reason) = refusal(&mut client, b"not a MAML document".to_vec()).await;
            assert_eq!(reason, "MALFORMED");
        }
        let job = submit(&mut client, signed(&bell, &lab)).await;
        let job = finished(&mut client, &lab, &job.id).await;
        assert_eq!(job.state, JobState::Succeeded as i32, "{job:?}");
        // Its certificate proves who asks about its jobs; another trusted client's certificate
        // sees nothing of them (issue 34: carol's Get returned alice's result under mutual TLS).
        let get = GetRequest {
            job_id: job.id.clone(),
        };
        let watch = WatchRequest {
            job_id: job.id.clone(),
        };
        client.get(get.clone()).await.unwrap();
        client.watch(watch.clone()).await.unwrap();
        client.get_receipt_document(get.clone()).await.unwrap();
        let mut carol = tls_client(&url, &dir, Some("carol")).await.unwrap();
        let no_such_job = |refused: tonic::Status| {
            assert_eq!(
                chimera_client::reason_of(&refused).as_deref(),
                Some("NO_SUCH_JOB"),
                "{refused:?}"
            );
        };
        no_such_job(carol.get(get.clone()).await.unwrap_err());
        no_such_job(carol.watch(watch).await.unwrap_err());
        no_such_job(carol.get_receipt_document(get).await.unwrap_err());
        let cancel = chimera_proto::v1::CancelRequest { job_id: job.id };
        no_such_job(carol.cancel(cancel).await.unwrap_err());

        let call = |mut client: EngineClient<Channel>| async move {
            client
                .list_heads(chimera_proto::v1::ListHeadsRequest {})
                .await
                .map(|_| ())
        };
        // A certificate from the CA, but for no trusted key.
        let stranger = tls_client(&url, &dir, Some("stranger")).await.unwrap();
        let refused = call(stranger).await.unwrap_err();
        assert_eq!(
            chimera_client::reason_of(&refused).as_deref(),
            Some("UNKNOWN_CLIENT"),
            "{refused:?}"
        );
        // No certificate: no call gets through, and why is the TLS alert the port sends, which
        // tonic's client does not pass on (a plain TLS client reads it). No TLS: no answer.
        if let Ok(anonymous) = tls_client(&url, &dir, None).await {
            call(anonymous).await.unwrap_err();
        }
        let grpc_port = served.url.trim_start_matches("http://");
        let alert = alert_without_a_certificate(grpc_port, &dir);
        assert!(alert.contains("CertificateRequired"), "{alert}");
        let plain = Channel::from_shared(served.url.clone())
            .unwrap()
            .connect()
            .await;
        let plain = match plain {
            Ok(channel) => call(EngineClient::new(channel)).await.unwrap_err(),
            Err(e) => tonic::Status::from_error(Box::new(e)),
        };
        // The connection fails under the call: the TLS alert read as HTTP/2, or the port closing
        // it first. No answer of the engine's.
        let failed = ["h2 protocol error", "transport error"];
        assert!(
            chimera_client::reason_of(&plain).is_none()
                && failed.iter().any(|f| plain.message().contains(f)),
            "a plaintext call was answered: {plain:?}"
        );
        // The CLI, with the client's certificate.
        let out = ok(chimera(&[
            "heads",
            "--server",
            &url,
            "--tls-ca",
            &client_ca,
            "--tls-cert",
            &file("lab.pem"),
            "--tls-key",
            &file("lab.key"),
        ]));
        assert!(String::from_utf8_lossy(&out.stdout).contains("q0"));

        // The HTTP door: the same certificate, and the same client certificate check.
        let bell_http = document(
            "urn:uuid:over-https",
            "quantum_circuit",
            "",
            "shots: 10",
            &[("qasm", BELL)],
        );
        let signed_http = signed(&bell_http, &lab);
        let door_call = |cert, method, path, body| https(&door, &dir, cert, method, path, body);
        let (code, body) = door_call(Some("lab"), "POST", "/execute", &signed_http).unwrap();
        assert_eq!(
            (code, &json(&body)["status"]),
            (200, &"succeeded".into()),
            "{body}"
        );
        let (code, body) = door_call(Some("stranger"), "POST", "/execute", &signed_http).unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"UNKNOWN_CLIENT".into()),
            "{body}"
        );
        let (code, body) = door_call(Some("stranger"), "GET", "/", b"").unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"UNKNOWN_CLIENT".into()),
            "{body}"
        );
        let (code, _) = door_call(Some("stranger"), "GET", "/health", b"").unwrap();
        assert_eq!(code, 200);
        // No certificate: the handshake fails, so no request is read. Plaintext: no HTTP answer.
        door_call(None, "GET", "/health", b"").unwrap_err();
        let alert = alert_without_a_certificate(&door, &dir);
        assert!(alert.contains("CertificateRequired"), "{alert}");
        let mut plain = std::net::TcpStream::connect(&door).unwrap();
        std::io::Write::write_all(&mut plain, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let _ = std::io::Read::read_to_end(&mut plain, &mut answer);
        assert!(!answer.starts_with(b"HTTP/"), "the door answered plaintext");

        // Revoked: its certificate no longer opens the door.
        ok(chimera(&["trust", "revoke", "lab", "--data-dir", data_arg]));
        let (code, body) = door_call(Some("lab"), "GET", "/", b"").unwrap();
        assert_eq!(
            (code, &json(&body)["reason"]),
            (403, &"REVOKED_CLIENT".into()),
            "{body}"
        );
        let refused = call(client).await.unwrap_err();
        assert_eq!(
            chimera_client::reason_of(&refused).as_deref(),
            Some("REVOKED_CLIENT"),
            "{refused:?}"
        );
    });
}

#[test]
fn plaintext_is_served_on_loopback_only_unless_allowed() {
    let dir = work_dir("engine-plaintext");
    let out = chimera(&[
        "serve",
        "--listen",
        "0.0.0.0:0",
        "--metrics-addr",
        "off",
        "--data-dir",
        dir.join("data").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let said = failure(&out);
    assert!(
        said.contains("not a loopback address") && said.contains("--tls-cert"),
        "{said}"
    );
}

/// The image's command and health check are this binary's: the engine they start answers the
/// health check (the image itself is built and run by tests/docker/check-dockerfile-cuda.sh,
/// which needs a Docker daemon).
#[test]
fn the_cuda_images_command_and_health_check_work_with_this_binary() {
    let dir = work_dir("engine-docker-cmd");
    let dockerfile = std::fs::read_to_string(repo("Dockerfile.cuda")).unwrap();
    let data = dir.join("data");
    let command: Vec<String> = dockerfile_array(&dockerfile, "CMD")
        .into_iter()
        .map(|arg| match arg.as_str() {
            "0.0.0.0:50051" => "0.0.0.0:0".into(),
            "0.0.0.0:9090" => "127.0.0.1:0".into(),
            "/var/lib/chimera" => data.to_str().unwrap().into(),
            _ => arg,
        })
        .collect();
    let served = Served::run(&command, "127.0.0.1:0".into());
    let port = served.url.rsplit(':').next().unwrap().to_owned();
    let health = dockerfile_array(&dockerfile, "HEALTHCHECK");
    assert_eq!(health[0], "chimera");
    let args: Vec<String> = health[1..]
        .iter()
        .map(|a| a.replace(":50051", &format!(":{port}")))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let out = loop {
        let out = chimera(&args);
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    drop(served);
    ok(out);
}

#[test]
fn the_http_door_executes_signed_jobs_through_the_same_checks_and_journal() {
    let dir = work_dir("engine-http");
    let data = dir.join("data");
    let lab = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(&data, &["--http-listen", "127.0.0.1:0"]);
    let door = http_door(&served, "http");

    let bell = document(
        "urn:uuid:over-http",
        "quantum_circuit",
        "",
        "shots: 64\nseed: 3\nobservables: [\"Z0 Z1\"]",
        &[("qasm", BELL)],
    );
    let (code, body) = http(&door, "POST", "/execute", &signed(&bell, &lab));
    let answer = json(&body);
    assert_eq!(
        (code, &answer["status"]),
        (200, &"succeeded".into()),
        "{body}"
    );
    let counts = answer["result"]["counts"].as_object().expect("counts");
    assert_eq!(
        counts.values().map(|c| c.as_u64().unwrap()).sum::<u64>(),
        64
    );
    assert!(counts.keys().all(|k| k == "00" || k == "11"), "{body}");
    // Each observable the Context names, by its text, with its value in the state.
    let expectation = &answer["result"]["expectation_values"][0];
    assert_eq!(expectation["observable"], "Z0 Z1", "{body}");
    assert!(
        (expectation["value"].as_f64().unwrap() - 1.0).abs() < 1e-6,
        "{body}"
    );
    assert!(
        answer["receipt"]["statement"]
            .as_str()
            .unwrap()
            .contains("urn:uuid:over-http")
    );

    // The same journal as gRPC: the job is there, and the same document again is that job.
    runtime().block_on(async {
        let mut client = client(&served.url).await;
        let job = finished(&mut client, &lab, "urn:uuid:over-http").await;
        assert_eq!(job.state, JobState::Succeeded as i32);
    });
    let (code, body) = http(&door, "POST", "/maml/execute", &signed(&bell, &lab));
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["job_id"], "urn:uuid:over-http");

    // Refusals: the same reasons as gRPC's, with the nearest HTTP status.
    let (code, body) = http(&door, "POST", "/execute", b"hello");
    assert_eq!(
        (code, &json(&body)["reason"]),
        (400, &"MALFORMED".into()),
        "{body}"
    );
    let unsigned = document("urn:uuid:h2", "quantum_circuit", "", "", &[("qasm", BELL)]);
    let (code, body) = http(&door, "POST", "/execute", unsigned.as_bytes());
    assert_eq!(
        (code, &json(&body)["reason"]),
        (401, &"UNSIGNED".into()),
        "{body}"
    );

    // What the door does not take is answered in the same JSON, saying what it does take.
    for (method, path, code, reason, says) in [
        (
            "POST",
            "/execute?wait=soon",
            400,
            "BAD_WAIT",
            "?wait=soon: give seconds from 0 to 600",
        ),
        (
            "POST",
            "/execute?wait=-1",
            400,
            "BAD_WAIT",
            "?wait=-1: give seconds",
        ),
        (
            "POST",
            "/execute?wait=1&wait=2",
            400,
            "BAD_QUERY",
            "takes ?wait=SECONDS",
        ),
        (
            "GET",
            "/jobs",
            404,
            "NOT_FOUND",
            "no GET /jobs: this door serves POST /execute",
        ),
        (
            "DELETE",
            "/execute",
            405,
            "METHOD_NOT_ALLOWED",
            "no DELETE /execute",
        ),
    ] {
        let (got, body) = http(&door, method, path, &signed(&bell, &lab));
        let answer = json(&body);
        assert_eq!((got, &answer["reason"]), (code, &reason.into()), "{body}");
        assert_eq!(answer["status"], "refused", "{body}");
        assert!(answer["message"].as_str().unwrap().contains(says), "{body}");
    }

    // Not waiting: accepted, not yet ended.
    let training = training_job("urn:uuid:http-training", 300);
    let (code, body) = http(&door, "POST", "/execute?wait=0", &signed(&training, &lab));
    let answer = json(&body);
    assert_eq!(code, 202, "{body}");
    assert!(
        ["queued", "running"].contains(&answer["status"].as_str().unwrap()),
        "{body}"
    );

    let (code, body) = http(&door, "GET", "/health", b"");
    assert_eq!(
        (code, json(&body)["status"].as_str()),
        (200, Some("serving"))
    );
    let (code, body) = http(&door, "GET", "/", b"");
    let status = json(&body);
    assert_eq!(code, 200);
    assert_eq!(status["heads"].as_array().unwrap().len(), 4, "{body}");
}

#[test]
fn the_doors_bound_their_connections_and_drop_clients_who_say_nothing() {
    let dir = work_dir("engine-connections");
    let data = dir.join("data");
    let lab = trusted_key(&data, &dir, "lab", "*");
    let served = Served::start_with(
        &data,
        &[
            "--http-listen",
            "127.0.0.1:0",
            "--max-connections",
            "2",
            "--read-timeout",
            "1",
        ],
    );
    let door = http_door(&served, "http");
    let connect = || std::net::TcpStream::connect(&door).unwrap();

    // Two clients take both places at the door and say nothing; a third waits in the listen
    // queue, and is answered once the door has closed the two silent ones.
    let mut silent = [connect(), connect()];
    let started = Instant::now();
    let (code, _) = http(&door, "GET", "/health", b"");
    assert_eq!(code, 200);
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "answered after {:?}, while both places were held",
        started.elapsed()
    );
    for stream in &mut silent {
        assert!(closed_by_server(stream, Duration::from_secs(5)));
    }

    // Headers sent a byte at a time never finish in time: the connection is closed.
    let mut slow = connect();
    let trickle_until = Instant::now() + Duration::from_secs(3);
    let mut closed = false;
    for byte in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: "
        .iter()
        .cycle()
    {
        if Instant::now() > trickle_until || slow.write_all(&[*byte]).is_err() {
            closed = closed_by_server(&mut slow, Duration::from_secs(2));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(closed, "a client trickling its headers kept its connection");

    // A body that does not arrive in time is refused, saying so.
    let mut stalled = connect();
    write!(
        stalled,
        "POST /execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part"
    )
    .unwrap();
    let mut answer = String::new();
    stalled.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("BODY_TIMEOUT"), "{answer}");

    // Too large a request is refused in the door's JSON, with the same reason as gRPC's.
    let (code, body) = http(
        &door,
        "POST",
        "/execute",
        &vec![b'x'; DEFAULT_MAX_BYTES + 4096],
    );
    assert_eq!(
        (code, &json(&body)["reason"]),
        (413, &"TOO_LARGE".into()),
        "{body}"
    );
    let bell = document("urn:uuid:c1", "quantum_circuit", "", "", &[("qasm", BELL)]);
    let (code, body) = http(&door, "POST", "/execute", &signed(&bell, &lab));
    assert_eq!(code, 200, "{body}");

    // The gRPC port is bounded too. A client that says nothing is dropped; with both places held
    // by clients that began HTTP/2 and went quiet, a call waits until they are free.
    let grpc = served.url.trim_start_matches("http://").to_owned();
    let mut silent = std::net::TcpStream::connect(&grpc).unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(5)));
    let quiet = || {
        let mut stream = std::net::TcpStream::connect(&grpc).unwrap();
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            .unwrap();
        stream
    };
    let held = [quiet(), quiet()];
    runtime().block_on(async {
        let call = async { heads(&mut client(&served.url).await).await.len() };
        assert!(
            tokio::time::timeout(Duration::from_secs(2), call)
                .await
                .is_err(),
            "a gRPC call was served while both places were held"
        );
        drop(held);
        let call = async { heads(&mut client(&served.url).await).await.len() };
        let heads = tokio::time::timeout(Duration::from_secs(10), call).await;
        assert_eq!(heads.expect("served once the places were free"), 4);
    });

    // What the doors hold, and whom they dropped for silence, is on the metrics page.
    let metrics = served.scrape_metrics();
    for door in ["door=\"grpc\"", "door=\"http\""] {
        let at_most = series(&metrics, "chimera_connections_max", &[door]);
        assert_eq!(at_most, Some(2.0), "{door}");
        let open = series(&metrics, "chimera_connections_open", &[door]);
        assert!(
            open.is_some_and(|n| (0.0..=2.0).contains(&n)),
            "{door}: {open:?}"
        );
    }
    let silent = series(
        &metrics,
        "chimera_connections_silent_total",
        &["door=\"grpc\""],
    );
    assert!(silent.is_some_and(|n| n >= 1.0), "{silent:?}");
}
