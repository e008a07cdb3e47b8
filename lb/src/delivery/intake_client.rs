//! The forwarder's connection to one worker's `POST /intake`: one persistent HTTP/1.1
//! keep-alive connection (TCP or Unix socket), opened on first use and opened again
//! after any failure.
//!
//! The hyper client connection is used directly rather than a pooled client: the
//! forwarder sends one batch at a time per worker, so one connection per worker is all
//! it needs, and a failure tells exactly which worker failed.

use super::workers::WorkerAddr;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use std::time::Duration;

/// What a worker said about a batch.
#[derive(Debug)]
pub(crate) enum IntakeReply {
    /// 200: the batch is committed in the worker's database.
    Recorded,
    /// 400: the worker found a malformed line; the body says which.
    Malformed(String),
    /// 413: the batch is larger than the worker takes (a worker with a smaller limit
    /// than this lb's `LB_BATCH_MAX` assumes): smaller batches will do.
    TooLarge,
    /// Any other status (503 while it shuts down): try another worker or later.
    Unavailable(u16),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum IntakeError {
    #[error("cannot connect to worker {addr}: {source}")]
    Connect {
        addr: WorkerAddr,
        source: std::io::Error,
    },
    #[error("HTTP exchange with worker {addr} failed: {source}")]
    Http {
        addr: WorkerAddr,
        source: hyper::Error,
    },
    #[error("worker {addr} did not answer within {timeout:?}")]
    Timeout { addr: WorkerAddr, timeout: Duration },
}

pub(crate) struct IntakeClient {
    addr: WorkerAddr,
    conn: Option<SendRequest<Full<Bytes>>>,
}

impl IntakeClient {
    pub(crate) fn new(addr: WorkerAddr) -> IntakeClient {
        IntakeClient { addr, conn: None }
    }

    pub(crate) fn addr(&self) -> &WorkerAddr {
        &self.addr
    }

    /// Posts one batch (lines in the `payment::intake` format). Any failure drops the
    /// connection, so the next call starts on a fresh one.
    pub(crate) async fn post(
        &mut self,
        batch: Bytes,
        timeout: Duration,
    ) -> Result<IntakeReply, IntakeError> {
        let result = tokio::time::timeout(timeout, self.exchange(batch))
            .await
            .unwrap_or_else(|_| {
                Err(IntakeError::Timeout {
                    addr: self.addr.clone(),
                    timeout,
                })
            });
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn exchange(&mut self, batch: Bytes) -> Result<IntakeReply, IntakeError> {
        let http = |source| IntakeError::Http {
            addr: self.addr.clone(),
            source,
        };
        let conn = match &mut self.conn {
            Some(conn) if !conn.is_closed() => conn,
            _ => self.conn.insert(connect(&self.addr).await?),
        };
        conn.ready().await.map_err(http)?;
        let request = intake_request(batch);
        let response = conn.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok(match status {
            200 => IntakeReply::Recorded,
            400 => IntakeReply::Malformed(String::from_utf8_lossy(&body).into_owned()),
            413 => IntakeReply::TooLarge,
            other => IntakeReply::Unavailable(other),
        })
    }
}

fn intake_request(batch: Bytes) -> Request<Full<Bytes>> {
    let mut request = Request::new(Full::new(batch));
    *request.method_mut() = Method::POST;
    *request.uri_mut() = Uri::from_static("/intake");
    let headers = request.headers_mut();
    headers.insert(header::HOST, HeaderValue::from_static("api"));
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    request
}

async fn connect(addr: &WorkerAddr) -> Result<SendRequest<Full<Bytes>>, IntakeError> {
    let stream = super::workers::connect(addr)
        .await
        .map_err(|source| IntakeError::Connect {
            addr: addr.clone(),
            source,
        })?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| IntakeError::Http {
            addr: addr.clone(),
            source,
        })?;
    let addr = addr.clone();
    // The connection task ends when the worker closes it or the sender is dropped.
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!("intake connection to {addr} ended: {e}");
        }
    });
    Ok(sender)
}
