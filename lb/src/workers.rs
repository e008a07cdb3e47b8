//! Addresses of the api workers (`host:port` or `unix:/path`), in the two shapes the lb
//! needs them: a Pingora [`Backend`] for the proxied routes, and a fresh byte stream for
//! the forwarder's own HTTP/1.1 connection.
//!
//! The proxy resolves a host name once at start (Pingora's static discovery wants socket
//! addresses); the forwarder resolves it again on every reconnect, so a worker container
//! that comes back with a new address still gets intake.

use pingora::lb::Backend;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use std::net::ToSocketAddrs;
use std::path::PathBuf;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where one api worker listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerAddr {
    /// `host:port`, the host an IP address or a name.
    Tcp(String),
    /// `unix:/path/to/socket`.
    Unix(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("`{0}` is neither `host:port` nor `unix:/path`")]
    Malformed(String),
    #[error("cannot resolve worker `{addr}`: {source}")]
    Resolve {
        addr: String,
        source: std::io::Error,
    },
}

impl std::str::FromStr for WorkerAddr {
    type Err = AddrError;

    fn from_str(text: &str) -> Result<WorkerAddr, AddrError> {
        if let Some(path) = text.strip_prefix("unix:") {
            return match path.is_empty() {
                true => Err(AddrError::Malformed(text.to_string())),
                false => Ok(WorkerAddr::Unix(PathBuf::from(path))),
            };
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(WorkerAddr::Tcp(text.to_string()))
            }
            _ => Err(AddrError::Malformed(text.to_string())),
        }
    }
}

impl std::fmt::Display for WorkerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerAddr::Tcp(hostport) => f.write_str(hostport),
            WorkerAddr::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Anything the forwarder can speak HTTP/1.1 over.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

impl WorkerAddr {
    /// The worker as a Pingora backend for the load balancer of the proxied routes.
    pub fn backend(&self) -> Result<Backend, AddrError> {
        let addr = match self {
            WorkerAddr::Tcp(hostport) => {
                let resolve = |source| AddrError::Resolve {
                    addr: hostport.clone(),
                    source,
                };
                let first = hostport.to_socket_addrs().map_err(resolve)?.next();
                let not_found = || resolve(std::io::ErrorKind::NotFound.into());
                PingoraAddr::Inet(first.ok_or_else(not_found)?)
            }
            WorkerAddr::Unix(path) => {
                let resolve = |source| AddrError::Resolve {
                    addr: self.to_string(),
                    source,
                };
                PingoraAddr::Unix(
                    std::os::unix::net::SocketAddr::from_pathname(path).map_err(resolve)?,
                )
            }
        };
        Ok(Backend {
            addr,
            weight: 1,
            ext: Default::default(),
        })
    }

    /// Opens a new connection to the worker (resolving a host name again).
    pub async fn connect(&self) -> std::io::Result<Box<dyn ByteStream>> {
        match self {
            WorkerAddr::Tcp(hostport) => {
                let stream = tokio::net::TcpStream::connect(hostport.as_str()).await?;
                // Small request, small answer: do not let Nagle hold either back.
                stream.set_nodelay(true)?;
                Ok(Box::new(stream))
            }
            WorkerAddr::Unix(path) => Ok(Box::new(tokio::net::UnixStream::connect(path).await?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_both_kinds() {
        for text in ["127.0.0.1:9101", "api1:8080", "unix:/run/api/1.sock"] {
            assert_eq!(text.parse::<WorkerAddr>().unwrap().to_string(), text);
        }
        for bad in ["127.0.0.1", ":80", "host:port", "unix:"] {
            assert!(bad.parse::<WorkerAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn becomes_a_backend() {
        let tcp = "127.0.0.1:9101"
            .parse::<WorkerAddr>()
            .unwrap()
            .backend()
            .unwrap();
        assert_eq!(tcp.addr.to_string(), "127.0.0.1:9101");
        let uds = "unix:/tmp/x.sock"
            .parse::<WorkerAddr>()
            .unwrap()
            .backend()
            .unwrap();
        assert!(matches!(uds.addr, PingoraAddr::Unix(_)));
    }
}
