//! The memory that gRPC messages still arriving may take, all clients together. tonic keeps each
//! message until it has come whole, and a connection may open any number of calls: one client
//! that opened 1,000 `Submit` calls on one connection and sent 900 KB of each message, then
//! nothing more, held 900 MB of the engine's memory for as long as it liked (found by hand).
//! Each message now holds its bytes against a budget until it is whole, and must come whole
//! within the read timeout; a message the budget cannot take is refused. The HTTP door's bodies
//! hold theirs against the same budget while they are read.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use tonic::Status;

use crate::refusal::Reason;

/// Bytes held by messages still arriving, at most `max`.
pub(crate) struct Budget {
    max: usize,
    held: AtomicUsize,
}

impl Budget {
    pub(crate) fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: AtomicUsize::new(0),
        })
    }

    fn take(&self, bytes: usize) -> bool {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&after| after <= self.max)
            })
            .is_ok()
    }

    fn give_back(&self, bytes: usize) {
        self.held.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The refusal of bytes the budget cannot take.
    pub(crate) fn full(&self) -> Status {
        Reason::EngineBusy.status(format!(
            "the engine holds {} MiB of requests still arriving, its most; retry shortly",
            self.max >> 20
        ))
    }
}

/// Bytes of one request held against the budget; given back when dropped.
pub(crate) struct Hold {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Hold {
    pub(crate) fn new(budget: Arc<Budget>) -> Self {
        Self { budget, bytes: 0 }
    }

    /// Holds `bytes` more, or the refusal if the budget cannot take them.
    pub(crate) fn take(&mut self, bytes: usize) -> Result<(), Status> {
        if !self.budget.take(bytes) {
            return Err(self.budget.full());
        }
        self.bytes += bytes;
        Ok(())
    }

    /// Gives back all it holds.
    fn give_back(&mut self) {
        self.budget.give_back(std::mem::take(&mut self.bytes));
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.give_back();
    }
}

/// Where a request body stands in gRPC's framing: a flag byte and a 4-byte length, then that
/// many bytes of message.
enum Framing {
    Header { bytes: [u8; 5], got: usize },
    Message { left: usize },
}

/// A gRPC request body whose message being received holds its bytes against the budget.
pub(crate) struct Budgeted<B> {
    inner: B,
    within: Duration,
    framing: Framing,
    /// The bytes of the message being received.
    held: Hold,
    /// While a message is being received: when it must have come whole.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<B> Budgeted<B> {
    pub(crate) fn new(inner: B, budget: Arc<Budget>, within: Duration) -> Self {
        Self {
            inner,
            within,
            framing: Framing::Header {
                bytes: [0; 5],
                got: 0,
            },
            held: Hold::new(budget),
            deadline: None,
        }
    }

    /// Follows `data` through the framing, holding the bytes of each message until it is whole.
    fn account(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            match &mut self.framing {
                Framing::Header { bytes, got } => {
                    let take = (5 - *got).min(data.len());
                    bytes[*got..*got + take].copy_from_slice(&data[..take]);
                    (*got, data) = (*got + take, &data[take..]);
                    if *got == 5 {
                        let length = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
                        self.framing = Framing::Message {
                            left: length as usize,
                        };
                        self.deadline = Some(Box::pin(tokio::time::sleep(self.within)));
                    }
                }
                Framing::Message { left } => {
                    let take = (*left).min(data.len());
                    self.held.take(take)?;
                    (*left, data) = (*left - take, &data[take..]);
                }
            }
            if let Framing::Message { left: 0 } = self.framing {
                self.message_whole();
            }
        }
        Ok(())
    }

    /// The message has come whole: tonic decodes it at once, and its bytes are given back.
    fn message_whole(&mut self) {
        self.held.give_back();
        self.framing = Framing::Header {
            bytes: [0; 5],
            got: 0,
        };
        self.deadline = None;
    }
}

impl<B> Body for Budgeted<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    if let Err(refused) = self.account(&data) {
                        return Poll::Ready(Some(Err(refused)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => {
                Poll::Ready(Some(Err(Status::from_error(error.into()))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let within = self.within;
                let late = (self.deadline.as_mut()).is_some_and(|d| d.as_mut().poll(cx).is_ready());
                if !late {
                    return Poll::Pending;
                }
                Poll::Ready(Some(Err(Reason::RequestTimeout.status(format!(
                    "a message of this request did not arrive whole within {} s \
                         (--read-timeout)",
                    within.as_secs_f64()
                )))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    use tonic::Code;

    /// A body of `chunks`, then silence.
    fn body(
        chunks: Vec<Vec<u8>>,
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames = chunks
            .into_iter()
            .map(|c| Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(c))));
        StreamBody::new(futures_util::stream::iter(frames).chain(futures_util::stream::pending()))
    }

    fn message(length: u32, sent: usize) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend(length.to_be_bytes());
        bytes.extend(std::iter::repeat_n(b'x', sent));
        bytes
    }

    #[tokio::test]
    async fn a_message_holds_its_bytes_until_whole_and_gives_them_back_then() {
        let budget = Budget::new(1000);
        let whole_then_half = vec![
            message(300, 300)[..100].to_vec(),
            message(300, 300)[100..].to_vec(),
            message(600, 250),
        ];
        let mut first = Budgeted::new(
            body(whole_then_half),
            Arc::clone(&budget),
            Duration::from_secs(60),
        );
        for _ in 0..3 {
            first.frame().await.unwrap().unwrap();
        }
        // The first message came whole; the second holds its 250 bytes so far.
        assert_eq!(budget.held.load(Ordering::Acquire), 250);
        // Another request's message beyond what is left is refused, saying why.
        let mut second = Budgeted::new(
            body(vec![message(900, 800)]),
            Arc::clone(&budget),
            Duration::from_secs(60),
        );
        let refused = second.frame().await.unwrap().unwrap_err();
        assert_eq!(
            chimera_client::reason_of(&refused).as_deref(),
            Some("ENGINE_BUSY")
        );
        drop((first, second));
        assert_eq!(budget.held.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_message_that_stops_arriving_fails_after_the_read_timeout() {
        let budget = Budget::new(1000);
        let mut stalled = Budgeted::new(
            body(vec![message(600, 10)]),
            Arc::clone(&budget),
            Duration::from_millis(100),
        );
        stalled.frame().await.unwrap().unwrap();
        let timed_out = stalled.frame().await.unwrap().unwrap_err();
        assert_eq!(timed_out.code(), Code::DeadlineExceeded);
        assert_eq!(
            chimera_client::reason_of(&timed_out).as_deref(),
            Some("REQUEST_TIMEOUT")
        );
        // Between messages a request may wait as long as it likes (a batch stream does).
        let mut idle = Budgeted::new(
            body(vec![message(3, 3)]),
            budget,
            Duration::from_millis(100),
        );
        idle.frame().await.unwrap().unwrap();
        let waited = tokio::time::timeout(Duration::from_millis(300), idle.frame()).await;
        assert!(
            waited.is_err(),
            "an idle request between messages was cut off"
        );
    }
}
