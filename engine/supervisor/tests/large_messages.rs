//! Two heads that each send the other a message larger than a socket's buffers, neither reading
//! until its own is sent (a head re-sealing and replicating its state while a peer's replicated
//! state is relayed to it). The supervisor must keep reading each head while it writes to it;
//! before it wrote on a task of its own, the two waited on each other for good.
//!
//! The heads are a few lines of Python speaking the protocol (`python3` on the PATH).

use std::sync::Arc;
use std::time::Duration;

use chimera_supervisor::{HeadConfig, HeadEvent, Supervisor, SupervisorConfig};
use tokio::sync::mpsc;

const FAKE_HEAD: &str = r#"
import json, os, socket, sys, time
me, peer, path = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX)
s.connect(path)
send = lambda m: s.sendall((json.dumps(m) + "\n").encode())
send({"type": "hello", "head_id": me, "pid": os.getpid(), "backend": "fake", "mailbox": ""})
# Slowly, 1 MiB every 50 ms, h1 starting 0.3 s after h0: h0's message is relayed to h1 while
# h1 is still sending its own.
time.sleep(0.0 if me == "h0" else 0.3)
line = (json.dumps({"type": "replica", "to": peer,
        "replica": {"change": "file", "place": "big", "sealed": "A" * (16 << 20)}}) + "\n").encode()
for at in range(0, len(line), 1 << 20):
    s.sendall(line[at:at + (1 << 20)])
    time.sleep(0.05)
for line in s.makefile("rb"):
    m = json.loads(line)
    if m.get("type") == "replica":
        send({"type": "progress", "job_id": "received",
              "progress": len(m["replica"]["sealed"])})
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_sending_each_other_more_than_a_socket_holds_both_get_through() {
    let sockets = tempfile::tempdir().unwrap();
    let heads = ["h0", "h1"].map(|id| HeadConfig {
        id: id.into(),
        role: chimera_job::Role::Quantum,
    });
    let config = SupervisorConfig {
        heads: heads.to_vec(),
        socket_dir: sockets.path().to_owned(),
        launcher: Arc::new(|head: &HeadConfig, socket: &std::path::Path| {
            let peer = if head.id == "h0" { "h1" } else { "h0" };
            let mut command = tokio::process::Command::new("python3");
            command.args(["-c", FAKE_HEAD, &head.id, peer]).arg(socket);
            command
        }),
        heartbeat_timeout: Duration::from_secs(120),
        start_timeout: Duration::from_secs(30),
        at_rest: None,
    };
    let (events, mut received) = mpsc::unbounded_channel();
    let supervisor = Supervisor::start(config, events).unwrap();
    let mut got = Vec::new();
    let waited = tokio::time::timeout(Duration::from_secs(20), async {
        while got.len() < 2 {
            match received.recv().await.unwrap() {
                HeadEvent::Progress { head, progress, .. } => got.push((head, progress)),
                HeadEvent::Down { head, reason, .. } => panic!("{head} down: {reason}"),
                _ => {}
            }
        }
    })
    .await;
    assert!(waited.is_ok(), "stuck: only {got:?} got through");
    got.sort_by(|a, b| a.0.cmp(&b.0));
    for (head, (id, bytes)) in ["h0", "h1"].iter().zip(&got) {
        assert_eq!(id, head);
        assert_eq!(bytes, &serde_json::json!(16 << 20));
    }
    supervisor.shutdown().await;
}
