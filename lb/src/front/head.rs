//! The head of each request, read on the bare connection before Pingora sees it, then put
//! back into the connection for Pingora to parse as usual: until its first byte comes, the
//! connection waits here, idle and closable ([`super::idle`]), holding only a small read
//! buffer instead of Pingora's per-request state. Invariant: a head must end within
//! [`HEAD_MAX_BYTES`] (a longer one is answered 431), whatever the client sends.

use super::idle::{FirstRead, IdleSpot};
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::Stream;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::time::timeout;

/// The longest request head the lb takes (request line and headers): the contest's are
/// about 200 bytes, browsers' a few KB.
pub(crate) const HEAD_MAX_BYTES: usize = 8 * 1024;
/// The read buffer a connection holds while it waits: room for a whole contest request.
const FIRST_READ_BYTES: usize = 512;

/// What came of waiting for a request head.
pub(crate) enum Head {
    /// The whole head (and whatever followed it) is back in the stream, for Pingora.
    Complete(Stream),
    /// No end of the head within [`HEAD_MAX_BYTES`].
    TooLarge(Stream),
    /// The client closed or broke the connection, or sent nothing for `idle`.
    Gone,
    /// Closed to make room for a new client while idle: before any byte was read.
    ClosedIdle,
}

/// A connection's read buffer for its request heads, kept from one request to the next
/// (no allocation per request); it holds [`FIRST_READ_BYTES`] between requests.
pub(crate) struct HeadBuffer(Vec<u8>);

impl HeadBuffer {
    pub(crate) fn new() -> HeadBuffer {
        HeadBuffer(Vec::with_capacity(FIRST_READ_BYTES))
    }
}

impl Default for HeadBuffer {
    fn default() -> Self {
        HeadBuffer::new()
    }
}

/// Reads until the head's empty line is in, each read waiting at most `idle`; until the
/// first byte is read the connection is idle in `spot`, and may be closed.
pub(crate) async fn read(
    stream: Stream,
    buffer: &mut HeadBuffer,
    idle: Duration,
    spot: &mut IdleSpot<'_>,
) -> Head {
    if !stream.as_any().is::<TcpStream>() {
        // Not a connection the lb's listener makes; Pingora reads it by itself.
        return Head::Complete(stream);
    }
    let Ok(mut tcp) = stream.into_any().downcast::<TcpStream>() else {
        return Head::Gone;
    };
    let bytes = &mut buffer.0;
    bytes.clear();
    // A long head made it grow: back to its small size before waiting again.
    bytes.shrink_to(FIRST_READ_BYTES);
    loop {
        let read = if bytes.is_empty() {
            match timeout(idle, spot.first_read(tcp.read_buf(bytes))).await {
                Ok(FirstRead::Read(read)) => Ok(read),
                Ok(FirstRead::ClosedIdle) => return Head::ClosedIdle,
                Err(elapsed) => Err(elapsed),
            }
        } else {
            timeout(idle, tcp.read_buf(bytes)).await
        };
        match read {
            Ok(Ok(read)) if read > 0 => {}
            _ => return Head::Gone,
        }
        if complete(bytes) {
            tcp.rewind(bytes);
            return Head::Complete(tcp);
        }
        // The buffer doubles from FIRST_READ_BYTES as reads fill it, so it stops at the
        // bound rather than past it.
        if bytes.len() >= HEAD_MAX_BYTES {
            return Head::TooLarge(tcp);
        }
    }
}

/// Whether `bytes` hold a whole request head: an empty line after the request line.
/// Empty lines before the request line, which HTTP/1.1 lets a server ignore, do not count;
/// a bare LF ends a line as CRLF does.
fn complete(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n'))
        .unwrap_or(bytes.len());
    let mut lines = bytes[start..].split(|&b| b == b'\n').skip(1).peekable();
    while let Some(line) = lines.next() {
        // The last piece has no LF after it yet: not a finished line.
        if lines.peek().is_some() && (line.is_empty() || line == b"\r") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_empty_line() {
        let whole = b"POST /payments HTTP/1.1\r\nHost: lb\r\nContent-Length: 2\r\n\r\n{}";
        assert!(complete(whole));
        assert!(complete(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(complete(b"GET / HTTP/1.1\nHost: lb\n\n"));
        assert!(complete(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"));
        for cut in 0..whole.len() - 2 {
            assert!(!complete(&whole[..cut]), "{:?}", &whole[..cut]);
        }
        assert!(
            !complete(b"\r\n\r\n"),
            "empty lines before the request line"
        );
        assert!(!complete(b"GET / HTTP/1.1\r\nHost: lb\r\n\r"));
    }
}
