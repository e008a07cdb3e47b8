//! Addresses of the api workers (`service::Address`: `host:port` or `unix:/path`), in the
//! two shapes the lb needs them: a Pingora [`Backend`] for the proxied routes, and a fresh
//! byte stream for the forwarder's own HTTP/1.1 connection.
//!
//! The proxy resolves a host name once at start (Pingora's static discovery wants socket
//! addresses); the forwarder resolves it again on every reconnect, so a worker container
//! that comes back with a new address still gets intake.

use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use std::net::ToSocketAddrs;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where one api worker listens.
pub(crate) type WorkerAddr = service::Address;

#[derive(Debug, thiserror::Error)]
#[error("cannot resolve worker `{addr}`: {source}")]
pub struct ResolveError {
    addr: WorkerAddr,
    source: std::io::Error,
}

/// Anything the forwarder can speak HTTP/1.1 over.
pub(crate) trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// The worker as a Pingora backend for the load balancer of the proxied routes.
pub(crate) fn backend(worker: &WorkerAddr) -> Result<Backend, ResolveError> {
    let resolve = |source| ResolveError {
        addr: worker.clone(),
        source,
    };
    let addr = match worker {
        WorkerAddr::Tcp(hostport) => {
            let first = hostport.to_socket_addrs().map_err(resolve)?.next();
            let not_found = || resolve(std::io::ErrorKind::NotFound.into());
            PingoraAddr::Inet(first.ok_or_else(not_found)?)
        }
        WorkerAddr::Unix(path) => {
            PingoraAddr::Unix(std::os::unix::net::SocketAddr::from_pathname(path).map_err(resolve)?)
        }
    };
    Ok(Backend {
        addr,
        weight: 1,
        ext: Default::default(),
    })
}

/// Opens a new connection to the worker (resolving a host name again).
pub(crate) async fn connect(worker: &WorkerAddr) -> std::io::Result<Box<dyn ByteStream>> {
    match worker {
        WorkerAddr::Tcp(hostport) => {
            let stream = tokio::net::TcpStream::connect(hostport.as_str()).await?;
            // Small request, small answer: do not let Nagle hold either back.
            stream.set_nodelay(true)?;
            Ok(Box::new(stream))
        }
        WorkerAddr::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn becomes_a_backend() {
        let tcp = backend(&"127.0.0.1:9101".parse().unwrap()).unwrap();
        assert_eq!(tcp.addr.to_string(), "127.0.0.1:9101");
        let uds = backend(&"unix:/tmp/x.sock".parse().unwrap()).unwrap();
        assert!(matches!(uds.addr, PingoraAddr::Unix(_)));
    }
}
