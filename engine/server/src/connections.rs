//! How many connections a door holds. Each door (gRPC, HTTP) takes at most `max` at once,
//! handshakes included; a client beyond that waits in the kernel's listen queue until one ends.
//! Without a bound, clients that connect and hold on took every file descriptor of the engine
//! (20,000 idle connections to the HTTP door, found by hand), and with them its other door, its
//! journal and its heads' sockets. A client that has sent nothing `first_bytes_within` after it
//! was taken is dropped, so that silent clients cannot hold every place either. One source holds
//! at most `per_source` of a door's places (an IPv6 source being its /64, which one host usually
//! has whole); its connections beyond that are closed at once, so that one host cannot fill the
//! door and keep everyone else waiting in the queue behind it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};

use crate::metrics_names as m;
use crate::sources::{PerSource, Place};

/// A connection that holds one of its door's places until it is dropped.
pub(crate) struct Counted<Io> {
    io: Io,
    /// The client's address, as the listener took it.
    peer: SocketAddr,
    _place: OwnedSemaphorePermit,
    _source_place: Place,
    /// Until the client's first bytes have come: when they must have.
    first_bytes_by: Option<Pin<Box<tokio::time::Sleep>>>,
    door: &'static str,
}

/// A listener that hands over at most `max` connections at a time.
pub(crate) struct BoundedListener {
    listener: TcpListener,
    places: Arc<Semaphore>,
    sources: Arc<PerSource>,
    first_bytes_within: Duration,
    /// The door's name in metrics: `grpc` or `http`.
    door: &'static str,
}

impl BoundedListener {
    /// At most `max` connections at once, `per_source` of them from one source.
    pub(crate) fn new(
        listener: TcpListener,
        max: usize,
        per_source: usize,
        first_bytes_within: Duration,
        door: &'static str,
    ) -> Self {
        let (max, per_source) = (max.max(1), per_source.max(1));
        metrics::gauge!(m::CONNECTIONS_MAX, "door" => door).set(max as f64);
        metrics::gauge!(m::CONNECTIONS_MAX_PER_SOURCE, "door" => door).set(per_source as f64);
        Self {
            listener,
            places: Arc::new(Semaphore::new(max)),
            sources: PerSource::new(per_source),
            first_bytes_within,
            door,
        }
    }

    /// The next connection, once one of the door's places is free.
    pub(crate) async fn accept(&self) -> Counted<TcpStream> {
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((tcp, peer)) => {
                    let source_place = match self.sources.take(peer.ip()) {
                        Ok(place) => place,
                        Err(full) => {
                            if full.first {
                                tracing::warn!(
                                    "{} holds {} connections to the {} door, the most one source \
                                     may (--max-connections-per-source); its further ones are \
                                     closed",
                                    full.source,
                                    full.most,
                                    self.door
                                );
                            }
                            metrics::counter!(m::CONNECTIONS_OVER_SOURCE_LIMIT, "door" => self.door)
                                .increment(1);
                            continue;
                        }
                    };
                    // Small answers must leave at once: with Nagle's algorithm on, a reply waits
                    // for the client's delayed ACK, about 40 ms per call.
                    let _ = tcp.set_nodelay(true);
                    let first_bytes_by = tokio::time::sleep(self.first_bytes_within);
                    metrics::gauge!(m::CONNECTIONS_OPEN, "door" => self.door).increment(1);
                    return Counted {
                        io: tcp,
                        peer,
                        _place: place,
                        _source_place: source_place,
                        first_bytes_by: Some(Box::pin(first_bytes_by)),
                        door: self.door,
                    };
                }
                Err(error) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// The connections as the stream that tonic serves.
    pub(crate) fn into_stream(
        self,
    ) -> impl tokio_stream::Stream<Item = io::Result<Counted<TcpStream>>> {
        futures_util::stream::unfold(self, |listener| async move {
            let connection = listener.accept().await;
            Some((Ok(connection), listener))
        })
    }
}

impl<Io> Drop for Counted<Io> {
    fn drop(&mut self) {
        metrics::gauge!(m::CONNECTIONS_OPEN, "door" => self.door).decrement(1);
    }
}

impl<Io: AsyncRead + Unpin> AsyncRead for Counted<Io> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let read = Pin::new(&mut self.io).poll_read(cx, buf);
        if let Some(deadline) = &mut self.first_bytes_by {
            if buf.filled().len() > filled {
                self.first_bytes_by = None;
            } else if read.is_pending() && deadline.as_mut().poll(cx).is_ready() {
                metrics::counter!(m::CONNECTIONS_SILENT, "door" => self.door).increment(1);
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent nothing in time",
                )));
            }
        }
        read
    }
}

impl<Io: AsyncWrite + Unpin> AsyncWrite for Counted<Io> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<Io> Counted<Io> {
    /// The client's address.
    pub(crate) fn peer(&self) -> SocketAddr {
        self.peer
    }
}

impl Connected for Counted<TcpStream> {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    // The clock stands still while the test runs and moves on only when nothing is left to do:
    // waits end by what happens, not by how fast a busy machine runs them.
    #[tokio::test(start_paused = true)]
    async fn a_connection_beyond_the_bound_waits_until_one_ends() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = BoundedListener::new(tcp, 2, 2, Duration::from_secs(60), "test");
        let _clients: Vec<_> =
            futures_util::future::join_all((0..3).map(|_| tokio::net::TcpStream::connect(addr)))
                .await;
        let first = listener.accept().await;
        let second = listener.accept().await;
        let waited = Duration::from_secs(30);
        assert!(
            tokio::time::timeout(waited, listener.accept())
                .await
                .is_err(),
            "a third connection was handed over while two were held"
        );
        drop(first);
        let third = tokio::time::timeout(waited, listener.accept()).await;
        assert!(third.is_ok(), "the third waited although a place was free");
        drop(second);
    }

    /// A connection to `addr` from `from` (any 127.x.y.z address works on Linux's loopback).
    async fn connect_from(from: [u8; 4], addr: SocketAddr) -> TcpStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind((IpAddr::from(from), 0).into()).unwrap();
        socket.connect(addr).await.unwrap()
    }

    #[tokio::test]
    async fn one_source_holds_at_most_its_share_and_its_further_connections_are_closed() {
        use tokio::io::AsyncReadExt;
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = BoundedListener::new(tcp, 10, 2, Duration::from_secs(60), "test");
        let mut same_source = Vec::new();
        for _ in 0..3 {
            same_source.push(connect_from([127, 0, 0, 1], addr).await);
        }
        let other_source = connect_from([127, 0, 0, 2], addr).await;
        let first = listener.accept().await;
        let _second = listener.accept().await;
        // The third from 127.0.0.1 is closed; the next handed over is 127.0.0.2's.
        let next = listener.accept().await;
        assert_eq!(next.peer().ip(), IpAddr::from([127, 0, 0, 2]));
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), same_source[2].read(&mut byte));
        assert!(
            matches!(closed.await, Ok(Ok(0) | Err(_))),
            "the source's third connection was not closed"
        );
        // A place it gives back is its again.
        drop(first);
        let fourth = connect_from([127, 0, 0, 1], addr).await;
        let again = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the source's freed place was not given back");
        assert_eq!(again.peer(), fourth.local_addr().unwrap());
        drop(other_source);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_in_time_is_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = BoundedListener::new(tcp, 2, 2, Duration::from_secs(15), "test");
        let mut silent_client = TcpStream::connect(addr).await.unwrap();
        let mut talking_client = TcpStream::connect(addr).await.unwrap();
        let mut silent = listener.accept().await;
        let mut talking = listener.accept().await;
        talking_client.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        talking.read_exact(&mut buf).await.unwrap();
        let error = silent.read(&mut buf).await.expect_err("timed out");
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        // Once it has spoken, a client may pause for as long as it likes.
        let pause = tokio::time::timeout(Duration::from_secs(60), talking.read(&mut buf)).await;
        assert!(pause.is_err(), "a client that had spoken was dropped");
        drop(silent_client.write_all(b"late").await);
    }
}
