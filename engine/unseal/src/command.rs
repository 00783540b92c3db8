//! An unseal key from a command's standard output: how a KMS client, Vault, sops, systemd-creds or
//! a mounted secret plug in.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine;
use zeroize::Zeroizing;

use crate::{KEY_BYTES, UnsealError, UnsealKey};

/// How long a command may take to print the key.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `line` with `sh -c` and reads the key it prints: the 32 bytes themselves, or them as 64
/// hex digits or in base64 (surrounding whitespace ignored). What it writes to its standard error
/// goes to the log, and into the refusal if it fails.
pub(crate) fn run(line: &str, timeout: Duration) -> Result<UnsealKey, UnsealError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(line)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a command stopped for its time stops with what it ran.
        .process_group(0)
        .spawn()
        .map_err(|error| UnsealError::CommandNotStarted {
            command: line.to_owned(),
            error,
        })?;
    // Both pipes are read as the command runs: one that fills a pipe must not wait on us.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait(&mut child, timeout);
    let output = Zeroizing::new(stdout.join().unwrap_or_default());
    let stderr = String::from_utf8_lossy(&stderr.join().unwrap_or_default()).into_owned();
    for said in stderr.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(command = line, "the unseal-key command said: {said}");
    }
    let command = line.to_owned();
    match status {
        None => Err(UnsealError::CommandTimedOut { command, stderr }),
        Some(status) if !status.success() => Err(UnsealError::CommandFailed {
            command,
            status: describe(status),
            stderr,
        }),
        Some(_) => key_in(&output).ok_or(UnsealError::CommandNotAKey {
            command,
            got: output.len(),
            stderr,
        }),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// The command's exit, or `None` when `timeout` passed first: then its process group is killed.
fn wait(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => break,
        }
    }
    let group = i32::try_from(child.id()).expect("process ids fit an i32");
    // SAFETY: a plain signal to the process group this function's child leads.
    unsafe { libc::kill(-group, libc::SIGKILL) };
    let _ = child.wait();
    None
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => format!("ended: {status}"),
    }
}

/// The key in a command's output: the bytes themselves, or hex, or base64.
fn key_in(output: &[u8]) -> Option<UnsealKey> {
    if output.len() == KEY_BYTES {
        return UnsealKey::from_slice(output);
    }
    let text = std::str::from_utf8(output).ok()?.trim();
    let decoded = Zeroizing::new(
        hex::decode(text)
            .ok()
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())?,
    );
    UnsealKey::from_slice(&decoded)
}
