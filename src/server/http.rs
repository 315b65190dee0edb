//! The HTTP side of the server: accepting connections and running HTTP/1.1 on them
//! with hyper, under limits that hold before any authentication.
//!
//! `axum::serve` runs hyper without a timer, so its header timeout is off and a peer
//! may hold a connection open forever by sending a byte now and then. Here every
//! connection gets:
//!
//! - a timer, so a request's head must arrive within `header_timeout` of the
//!   connection opening or of the previous response (which makes it the keep-alive
//!   idle timeout as well); a late head closes the connection (408 if it started);
//! - a bound on the head's size (`max_header_bytes`: 431 beyond it);
//! - a place among the connections that have not sent a complete request head yet,
//!   bounded per client IP and in total: over either bound the connection is closed
//!   as soon as it is accepted;
//! - HTTP/1.1 only: cleartext HTTP/2 (`h2c`, prior knowledge) is not served; the
//!   WebSocket upgrade is HTTP/1.1, and a second protocol would be a second parser
//!   exposed before authentication.
//!
//! Shutdown is bounded as a whole: connections finish their request in flight and
//! close; after the grace period whatever is left is dropped.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::meter::{FrameMeter, metered};

/// Time a client has to send a request's head.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(15);
/// Largest request head (request line and headers), in bytes.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 16 * 1024;
/// Connections without a complete request head yet, in total.
pub const DEFAULT_MAX_PENDING: usize = 4096;
/// Connections without a complete request head yet, per client IP: room for a load
/// generator's burst of connects from one machine (`syncprobe load` opens its
/// connections at once), which are pending only until their head is read.
pub const DEFAULT_MAX_PENDING_PER_IP: usize = 1024;
/// hyper's smallest read buffer; the head limit cannot go below it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// The limits of the HTTP side.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_pending: usize,
    pub max_pending_per_ip: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_pending: DEFAULT_MAX_PENDING,
            max_pending_per_ip: DEFAULT_MAX_PENDING_PER_IP,
        }
    }
}

/// Connections that have not sent a complete request head, per IP and in total.
#[derive(Default)]
struct Pending {
    counts: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// A connection's place among the pending ones; freed on drop.
struct PendingPlace {
    pending: Arc<Pending>,
    ip: IpAddr,
}

impl Pending {
    fn enter(self: &Arc<Self>, ip: IpAddr, limits: &HttpLimits) -> Option<PendingPlace> {
        let mut counts = self.counts.lock().expect("pending lock");
        let of_ip = counts.1.get(&ip).copied().unwrap_or(0);
        if counts.0 >= limits.max_pending || of_ip >= limits.max_pending_per_ip {
            return None;
        }
        counts.0 += 1;
        counts.1.insert(ip, of_ip + 1);
        Some(PendingPlace {
            pending: self.clone(),
            ip,
        })
    }
}

impl Drop for PendingPlace {
    fn drop(&mut self) {
        let mut counts = self.pending.counts.lock().expect("pending lock");
        counts.0 -= 1;
        if let Some(n) = counts.1.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.1.remove(&self.ip);
            }
        }
    }
}

/// The connection's socket, for the socket options of an upgrade (`socket::cork`). Its
/// handlers run while the connection, and so this descriptor, is open.
#[derive(Clone, Copy, Debug)]
pub struct TcpSocket(pub RawFd);

/// Serves `router` on `listener` until `stop` fires, then shuts down within `grace`.
pub(crate) async fn serve<L>(
    mut listener: L,
    router: Router,
    limits: HttpLimits,
    stop: CancellationToken,
    grace: Duration,
) where
    L: axum::serve::Listener<Addr = SocketAddr>,
    L::Io: AsRawFd,
{
    let pending = Arc::new(Pending::default());
    // One clock for every connection's frame meter: creating one calibrates it.
    let clock = governor::clock::DefaultClock::default();
    let mut connections = JoinSet::new();
    loop {
        let (io, addr) = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
            // Finished connections are reaped as they go, so the set stays small.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let Some(place) = pending.enter(addr.ip(), &limits) else {
            // Over a bound: closed at once, before a byte is read.
            drop(io);
            continue;
        };
        let router = router.clone();
        let stop = stop.clone();
        let meter = FrameMeter::new(clock.clone());
        let socket = TcpSocket(io.as_raw_fd());
        let io = metered(io, meter.clone());
        let extras = (place, meter, socket);
        connections.spawn(connection(io, addr, router, limits, extras, stop));
    }
    drop(listener);
    let drained = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(grace, drained).await.is_err() {
        // Past the grace period the rest are dropped (the set aborts them).
        connections.abort_all();
    }
}

/// One HTTP/1.1 connection (with upgrades), closed gracefully once `stop` fires.
async fn connection<I>(
    io: I,
    addr: SocketAddr,
    router: Router,
    limits: HttpLimits,
    (place, meter, socket): (PendingPlace, Arc<FrameMeter>, TcpSocket),
    stop: CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let place = Arc::new(Mutex::new(Some(place)));
    let service = router.map_request(move |mut request: Request<Incoming>| {
        // A complete head: the connection is no longer pending.
        place.lock().expect("place lock").take();
        request.extensions_mut().insert(ConnectInfo(addr));
        // The socket handler arms it once the connection is a sync socket.
        request.extensions_mut().insert(meter.clone());
        request.extensions_mut().insert(socket);
        request
    });
    let service = TowerToHyperService::new(service.map_err(|e: Infallible| e));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES));
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => return,
        () = stop.cancelled() => {}
    }
    conn.as_mut().graceful_shutdown();
    let _ = conn.await;
}
