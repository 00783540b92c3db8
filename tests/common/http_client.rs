//! What the engine's tests do as a client of its HTTP door: plain HTTP/1.1 over a stream.

use std::io::{Read, Write};

use crate::served::Served;

/// The address of the HTTP door that speaks `scheme` (`http`, `https`), from `chimera serve`'s
/// first lines.
pub fn http_door(served: &Served, scheme: &str) -> String {
    let line = format!("chimera serve: HTTP door on {scheme}://");
    served
        .preamble
        .iter()
        .find_map(|l| l.strip_prefix(&line))
        .unwrap_or_else(|| panic!("no HTTP door speaking {scheme}: {:?}", served.preamble))
        .to_owned()
}

/// One HTTP/1.1 request to `addr`: the status code and the body.
pub fn http(addr: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    http_with(addr, method, path, &[], body)
}

/// [`http`] with `headers` added to the request.
pub fn http_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    exchange_with(&mut stream, addr, method, path, headers, body).unwrap()
}

/// One HTTP/1.1 request over `stream`, which the server closes after answering: the status code
/// and the body.
pub fn exchange(
    stream: &mut (impl Read + Write),
    host: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    exchange_with(stream, host, method, path, &[], body)
}

fn exchange_with(
    stream: &mut (impl Read + Write),
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<(u16, String)> {
    let headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/markdown\r\n\
         {headers}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    let code = answer
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {answer:?}")))?;
    let body = answer.split_once("\r\n\r\n").unwrap().1.to_owned();
    Ok((code, body))
}

pub fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}
