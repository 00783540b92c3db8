//! A `chimera serve` child process for the engine's tests and its load bench.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `chimera serve` child process; stopped with SIGTERM when dropped.
pub struct Served {
    child: Child,
    /// The gRPC address, as a URL.
    pub url: String,
    /// What it printed before the gRPC address.
    pub preamble: Vec<String>,
    metrics: String,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Served {
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts it with `flags` added to its command line (on a port of its choosing unless they
    /// say `--listen`).
    pub fn start_with(data_dir: &Path, flags: &[&str]) -> Self {
        let metrics = format!("127.0.0.1:{}", free_port());
        let mut args: Vec<String> = vec!["serve".into(), "--metrics-addr".into(), metrics.clone()];
        if !flags.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"].map(str::to_owned));
        }
        args.extend(["--heartbeat-timeout", "2"].map(str::to_owned));
        args.extend(flags.iter().map(|f| f.to_string()));
        args.extend([
            "--data-dir".to_owned(),
            data_dir.to_str().unwrap().to_owned(),
        ]);
        Self::run(&args, metrics)
    }

    /// Runs `chimera ARGS` (a `serve` command line given whole), whose metrics are at `metrics`,
    /// until it says where it listens.
    pub fn run(args: &[String], metrics: String) -> Self {
        let mut child = Command::new(crate::common::exe())
            .args(args)
            .envs(crate::common::unseal_key_beside(args))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start chimera serve");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut preamble = Vec::new();
        let addr = loop {
            let line = lines
                .next()
                .expect("chimera serve ended before it listened")
                .unwrap();
            if let Some(addr) = line.strip_prefix("chimera serve: listening on ") {
                break addr.to_owned();
            }
            preamble.push(line);
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Self {
            child,
            url: format!("http://{addr}"),
            preamble,
            metrics,
        }
    }

    /// The Prometheus text the engine serves now.
    pub fn scrape_metrics(&self) -> String {
        let mut stream = std::net::TcpStream::connect(&self.metrics).unwrap();
        write!(
            stream,
            "GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.metrics
        )
        .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Stops it with SIGTERM, as an operator would: how long it took to exit (at most a
    /// minute; longer fails the test).
    pub fn stop(mut self) -> Duration {
        let asked = Instant::now();
        signal(self.pid(), libc::SIGTERM);
        while asked.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = self.child.try_wait() {
                std::mem::forget(self);
                return asked.elapsed();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("chimera serve did not stop within a minute of SIGTERM");
    }

    pub fn kill_hard(mut self) {
        signal(self.pid(), libc::SIGKILL);
        let _ = self.child.wait();
        std::mem::forget(self);
    }
}

impl Drop for Served {
    /// Stops it with SIGTERM; one that does not stop within 10 s is killed, and fails the test
    /// (unless the test has failed already).
    fn drop(&mut self) {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if !std::thread::panicking() {
            panic!("chimera serve did not stop within 10 s of SIGTERM; it was killed");
        }
    }
}

pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) with a pid this test started.
    assert_eq!(
        unsafe { libc::kill(pid, signal) },
        0,
        "kill({pid}, {signal})"
    );
}
