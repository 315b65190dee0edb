//! The byte pumps between a client and the proxy's HTTP side, one per direction,
//! where the network faults act (toxiproxy's semantics, `toxics/*.go`): each chunk
//! read is stamped, then delayed (`latency` ± jitter, from its arrival, so chunks
//! keep their spacing), split (`slicer`), paced (`bandwidth`, a governor token
//! bucket of bytes) and written; `timeout` swallows the data and closes after its
//! time, `reset_peer` resets the connection, `limit_data` closes after N bytes.
//! Faults are read from the live list at every chunk, so the control API's changes
//! apply to open connections; each fault's toxicity is decided once per direction.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::faults::{Dice, Direction, Fault, LANE_DOWN, LANE_UP};
use super::{Decision, Shared};

/// Largest chunk read at once.
const CHUNK: usize = 16 * 1024;
/// Chunks read ahead of the shaping (the latency pipeline's depth).
const READ_AHEAD: usize = 64;
/// Largest burst of a bandwidth limit, in bytes; smaller for slow rates (a tenth
/// of a second's worth), so a transfer keeps to the rate from its start.
const MAX_BURST: u32 = 64 * 1024;
/// Bytes are written in pieces of a quarter of the burst: a wake-up that comes
/// late (a busy machine) is made up from the rest of the bucket, not lost.
const PIECES_PER_BURST: u32 = 4;

/// How a connection's pumps ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Both directions reached their end.
    Eof,
    /// A fault closed the connection (`timeout`, `limit_data`, going offline).
    Close,
    /// `reset_peer`: close with a TCP RST.
    Reset,
}

/// Pumps both directions between `client` and the HTTP side (`near`) until both
/// end, or until a fault ends the connection.
pub async fn pump_both(
    client: &mut TcpStream,
    near: tokio::io::DuplexStream,
    connection: u64,
    shared: &Arc<Shared>,
) -> End {
    let (client_read, client_write) = client.split();
    let (near_read, near_write) = tokio::io::split(near);
    let up = pump(
        client_read,
        near_write,
        Lane::new(Direction::Up, connection, shared),
    );
    let down = pump(
        near_read,
        client_write,
        Lane::new(Direction::Down, connection, shared),
    );
    tokio::pin!(up, down);
    let (mut up_end, mut down_end) = (None, None);
    while up_end.is_none() || down_end.is_none() {
        let (direction, end) = tokio::select! {
            end = &mut up, if up_end.is_none() => (Direction::Up, end),
            end = &mut down, if down_end.is_none() => (Direction::Down, end),
        };
        match direction {
            Direction::Up => up_end = Some(end),
            _ => down_end = Some(end),
        }
        if let Some(end) = [up_end, down_end]
            .into_iter()
            .flatten()
            .find(|e| *e != End::Eof)
        {
            return end;
        }
    }
    End::Eof
}

/// One direction: read ahead into a queue, shape out of it.
async fn pump<R, W>(from: R, mut to: W, mut lane: Lane) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let end = {
        let reading = read_chunks(from, tx);
        let writing = lane.forward(&mut rx, &mut to);
        tokio::pin!(reading, writing);
        tokio::select! {
            () = &mut reading => writing.await,
            end = &mut writing => end,
        }
    };
    if end == End::Eof {
        let _ = to.shutdown().await;
    }
    end
}

/// Reads chunks with their arrival time until the end (or an error, which ends
/// the direction as an end would).
async fn read_chunks<R: AsyncRead + Unpin>(mut from: R, tx: mpsc::Sender<(Instant, Bytes)>) {
    loop {
        let mut buf = BytesMut::with_capacity(CHUNK);
        match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                if tx.send((Instant::now(), buf.freeze())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The network faults of one direction of one connection.
struct Lane {
    direction: Direction,
    connection: u64,
    shared: Arc<Shared>,
    dice: Dice,
    /// Whether each fault (by id) acts on this direction: decided once.
    decided: HashMap<u64, bool>,
    limiters: HashMap<u64, DefaultDirectRateLimiter>,
    sent: u64,
}

impl Lane {
    fn new(direction: Direction, connection: u64, shared: &Arc<Shared>) -> Lane {
        let lane = if direction == Direction::Up {
            LANE_UP
        } else {
            LANE_DOWN
        };
        Lane {
            direction,
            connection,
            shared: shared.clone(),
            dice: Dice::new(shared.seed, connection, lane),
            decided: HashMap::new(),
            limiters: HashMap::new(),
            sent: 0,
        }
    }

    async fn forward<W: AsyncWrite + Unpin>(
        &mut self,
        rx: &mut mpsc::Receiver<(Instant, Bytes)>,
        to: &mut W,
    ) -> End {
        while let Some((arrived, chunk)) = rx.recv().await {
            if let Some(end) = self.deliver(arrived, chunk, rx, to).await {
                return end;
            }
        }
        End::Eof
    }

    /// The faults acting on this direction now, deciding (and logging) the ones
    /// met for the first time.
    fn active(&mut self) -> Vec<(u64, Fault)> {
        let mut active = Vec::new();
        for (id, spec) in self.shared.faults(true) {
            if !spec.direction.covers(self.direction) {
                continue;
            }
            let applies = match self.decided.get(&id) {
                Some(applies) => *applies,
                None => {
                    let applies = self.dice.chance(spec.probability);
                    self.decided.insert(id, applies);
                    if applies {
                        self.log(spec.fault.name(), id, None);
                    }
                    applies
                }
            };
            if applies {
                active.push((id, spec.fault));
            }
        }
        active
    }

    fn log(&self, fault: &str, id: u64, detail: Option<String>) {
        let mut decision = Decision::new(self.connection, fault, id);
        decision.direction = Some(self.direction.as_str());
        decision.detail = detail;
        self.shared.decided(decision);
    }

    /// Applies the faults to one chunk and writes it; `Some` ends the connection.
    async fn deliver<W: AsyncWrite + Unpin>(
        &mut self,
        arrived: Instant,
        chunk: Bytes,
        rx: &mut mpsc::Receiver<(Instant, Bytes)>,
        to: &mut W,
    ) -> Option<End> {
        let active = self.active();
        let mut chunk = chunk;
        let mut closing = None;
        let mut delay = Duration::ZERO;
        let mut slicer = None;
        for (id, fault) in &active {
            match *fault {
                Fault::ResetPeer(after) => {
                    tokio::time::sleep(after).await;
                    self.log("reset-peer", *id, Some("reset".into()));
                    return Some(End::Reset);
                }
                Fault::Timeout(after) => {
                    self.log("timeout", *id, Some("forwarding stopped".into()));
                    return Some(swallow(rx, after).await);
                }
                Fault::LimitData(limit) => {
                    let left = limit.saturating_sub(self.sent);
                    if (chunk.len() as u64) >= left {
                        chunk.truncate(left as usize);
                        closing = Some((*id, limit));
                    }
                }
                Fault::Latency { delay: d, jitter } => delay += self.dice.around(d, jitter),
                Fault::Slicer { size, delay } => slicer = Some((size, delay)),
                _ => {}
            }
        }
        tokio::time::sleep_until(arrived + delay).await;
        let pieces = match slicer {
            Some((size, _)) => self.slices(chunk, size),
            None => vec![chunk],
        };
        let pause = slicer.map(|(_, d)| d).unwrap_or_default();
        for (n, piece) in pieces.into_iter().enumerate() {
            if n > 0 && !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            if self.write_paced(&active, piece, to).await.is_err() {
                return Some(End::Close);
            }
        }
        if let Some((id, limit)) = closing {
            self.log(
                "limit-data",
                id,
                Some(format!("closed after {limit} bytes")),
            );
            let _ = to.flush().await;
            return Some(End::Close);
        }
        None
    }

    /// `slicer`: pieces of about `size` bytes (half to one and a half times).
    fn slices(&mut self, mut chunk: Bytes, size: usize) -> Vec<Bytes> {
        let mut pieces = Vec::new();
        while !chunk.is_empty() {
            let n = self.dice.size_around(size).min(chunk.len());
            pieces.push(chunk.split_to(n));
        }
        pieces
    }

    /// Writes `piece`, waiting on every bandwidth limit for each burst of it.
    async fn write_paced<W: AsyncWrite + Unpin>(
        &mut self,
        active: &[(u64, Fault)],
        mut piece: Bytes,
        to: &mut W,
    ) -> std::io::Result<()> {
        let rates: Vec<(u64, u32)> = active
            .iter()
            .filter_map(|(id, f)| match f {
                Fault::Bandwidth { rate } => Some((*id, *rate)),
                _ => None,
            })
            .collect();
        if rates.is_empty() {
            to.write_all(&piece).await?;
            return to.flush().await;
        }
        let burst = rates.iter().map(|(_, r)| burst_of(*r)).min().unwrap_or(1);
        let step = (burst / PIECES_PER_BURST).max(1) as usize;
        while !piece.is_empty() {
            let bit = piece.split_to(step.min(piece.len()));
            for (id, rate) in &rates {
                let limiter = self.limiters.entry(*id).or_insert_with(|| limiter(*rate));
                if let Some(n) = NonZeroU32::new(bit.len() as u32) {
                    // `bit` is never larger than the smallest burst.
                    let _ = limiter.until_n_ready(n).await;
                }
            }
            to.write_all(&bit).await?;
        }
        to.flush().await
    }
}

/// The burst of a limit of `rate` bytes per second.
fn burst_of(rate: u32) -> u32 {
    (rate / 10).clamp(1, MAX_BURST)
}

fn limiter(rate: u32) -> DefaultDirectRateLimiter {
    let per_second = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst_of(rate)).unwrap_or(NonZeroU32::MIN);
    RateLimiter::direct(Quota::per_second(per_second).allow_burst(burst))
}

/// `timeout`: drops whatever comes; closes after `after` (never when zero).
async fn swallow(rx: &mut mpsc::Receiver<(Instant, Bytes)>, after: Duration) -> End {
    let deadline = (!after.is_zero()).then(|| Instant::now() + after);
    loop {
        let chunk = tokio::select! {
            chunk = rx.recv() => chunk,
            () = until(deadline) => return End::Close,
        };
        if chunk.is_none() {
            return End::Eof;
        }
    }
}

async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
