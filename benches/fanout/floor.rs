//! The floor: what this machine's kernel allows for two of the scenarios' jobs, measured
//! with no WebSocket, no HTTP and neither server — raw TCP over loopback, driven by mio,
//! between this process and a child (this benchmark started again with
//! `--floor-child`) — so that serve's figures can be set against the best any server and
//! client could do here, in the same run.
//!
//! - paced: each event is one `write` of [`FRAME`] bytes (the size of serve's frame for
//!   the benchmark's event) to every socket, from one thread per core; the child reads
//!   with epoll (one thread per core, one `recv` per readiness) and takes each frame's
//!   latency from the time written in it; each side's CPU time is its threads' over
//!   the events (the writes; the reads with their `epoll_wait`);
//! - connect: the child opens the sockets ([`IN_FLIGHT`] at once, from one thread per
//!   core) and sends [`REQUEST`] bytes on each (an upgrade request's size); this process
//!   answers each with [`RESPONSE`] bytes (a 101's, CONNECTED's and the opening ping's),
//!   from one accept loop per core (`SO_REUSEPORT`); the child times each socket from
//!   `connect` to the whole response.
//!
//! What serve and load do on top (HTTP, the handshake's key, the WebSocket framing,
//! the opening ping's answer, the tasks) is what the ratio serve / floor shows.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::{Events, Interest, Poll, Token};
use serde_json::{Value, json};

/// Bytes of one event frame.
const FRAME: usize = 154;
/// Bytes of a connection's request and of its response.
const REQUEST: usize = 200;
const RESPONSE: usize = 240;
/// Handshakes in flight at once (load's `--max-pending` in the benchmark).
const IN_FLIGHT: usize = 1024;
/// How long a child waits for the next readiness before it gives up.
const STALL: Duration = Duration::from_secs(10);

/// One thread per core, on each side.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// The calling thread's CPU time.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64
}

/// `items` dealt round-robin into `n` shares, one per thread.
fn deal<T>(items: impl Iterator<Item = T>, n: usize) -> Vec<Vec<T>> {
    let mut shares: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
    for (i, item) in items.enumerate() {
        shares[i % n].push(item);
    }
    shares
}

/// Starts the child side of a job (`paced …` or `connect …`); its last line holds its
/// figures (the paced child first says `ready`).
fn child(args: &[String]) -> std::process::Child {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    Command::new(exe)
        .arg("--floor-child")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the floor's child")
}

/// The paced floor at `c` sockets: `events` events at 2 per second. Returns a summary
/// with load's field names (latency, client CPU per frame, completeness) and this side's
/// CPU (the writes).
pub fn paced(c: usize, events: usize) -> (Value, Duration) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the floor's listener");
    let port = listener.local_addr().unwrap().port();
    let mut child = child(&[
        "paced".into(),
        port.to_string(),
        c.to_string(),
        events.to_string(),
    ]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let writers = threads();
    let shares = deal(
        (0..c).map(|_| {
            let (s, _) = listener.accept().expect("accept a floor socket");
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            s
        }),
        writers,
    );
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready", "the floor's reader did not start");
    let barrier = Arc::new(Barrier::new(writers + 1));
    let stamp = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|mut mine| {
            let (barrier, stamp) = (barrier.clone(), stamp.clone());
            std::thread::spawn(move || {
                let mut frame = [b'x'; FRAME];
                let mut cpu = Duration::ZERO;
                let mut unwritten = 0u64;
                for _ in 0..events {
                    barrier.wait();
                    let c0 = thread_cpu();
                    frame[..8].copy_from_slice(&stamp.load(Ordering::Acquire).to_le_bytes());
                    for s in &mut mine {
                        if !matches!(s.write(&frame), Ok(FRAME)) {
                            unwritten += 1;
                        }
                    }
                    cpu += thread_cpu() - c0;
                    barrier.wait();
                }
                (cpu, unwritten, mine)
            })
        })
        .collect();
    let start = Instant::now();
    for e in 0..events {
        let at = start + Duration::from_millis(500 * e as u64);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        stamp.store(now_us(), Ordering::Release);
        barrier.wait();
        barrier.wait();
    }
    let mut cpu = Duration::ZERO;
    let mut unwritten = 0;
    let mut held = Vec::new();
    for h in handles {
        let (c, u, mine) = h.join().unwrap();
        cpu += c;
        unwritten += u;
        held.push(mine);
    }
    line.clear();
    out.read_line(&mut line).unwrap();
    let _ = child.wait();
    drop(held);
    let mut summary: Value = serde_json::from_str(&line).expect("the floor reader's figures");
    summary["errors"] = json!({ "unwritten": unwritten });
    (summary, cpu)
}

/// The connect floor at `c` sockets. Returns a summary with load's field names
/// (connect rate, connect time) and this side's CPU.
pub fn connect(c: usize) -> (Value, Duration) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let first = reuse_port_listener(addr);
    let addr = first.local_addr().unwrap();
    let mut listeners = vec![first];
    listeners.extend((1..threads()).map(|_| reuse_port_listener(addr)));
    let stop = Arc::new(AtomicBool::new(false));
    let servers: Vec<_> = listeners
        .into_iter()
        .map(|l| {
            let stop = stop.clone();
            std::thread::spawn(move || accept_loop(l, &stop))
        })
        .collect();
    let mut child = child(&["connect".into(), addr.port().to_string(), c.to_string()]);
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    out.read_line(&mut line).unwrap();
    let _ = child.wait();
    stop.store(true, Ordering::Release);
    let cpu = servers.into_iter().map(|s| s.join().unwrap()).sum();
    (
        serde_json::from_str(&line).expect("the floor client's figures"),
        cpu,
    )
}

fn reuse_port_listener(addr: SocketAddr) -> mio::net::TcpListener {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_reuse_port(true).unwrap();
    socket.set_nonblocking(true).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(4096).unwrap();
    mio::net::TcpListener::from_std(socket.into())
}

/// Accepts and answers until `stop`; returns the thread's CPU time.
fn accept_loop(mut listener: mio::net::TcpListener, stop: &AtomicBool) -> Duration {
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new().unwrap();
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .unwrap();
    let mut events = Events::with_capacity(1024);
    let mut conns: Vec<(mio::net::TcpStream, usize)> = Vec::new();
    let mut buf = [0u8; 4096];
    let response = [b'r'; RESPONSE];
    let c0 = thread_cpu();
    while !stop.load(Ordering::Acquire) {
        poll.poll(&mut events, Some(Duration::from_millis(20)))
            .unwrap();
        for event in &events {
            if event.token() == LISTENER {
                while let Ok((mut s, _)) = listener.accept() {
                    s.set_nodelay(true).unwrap();
                    let token = Token(conns.len());
                    poll.registry()
                        .register(&mut s, token, Interest::READABLE)
                        .unwrap();
                    conns.push((s, 0));
                }
                continue;
            }
            let (s, got) = &mut conns[event.token().0];
            while *got < REQUEST {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => *got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => break,
                }
                if *got >= REQUEST {
                    let _ = s.write(&response);
                }
            }
        }
    }
    thread_cpu() - c0
}

/// The child's side: `paced PORT C EVENTS` or `connect PORT C`; prints its figures as
/// one JSON line.
pub fn child_main(args: &[String]) {
    let port: u16 = args[1].parse().expect("port");
    let c: usize = args[2].parse().expect("C");
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let figures = match args[0].as_str() {
        "paced" => read_paced(addr, c, args[3].parse().expect("events")),
        "connect" => open_all(addr, c),
        other => panic!("unknown floor job {other}"),
    };
    println!("{figures}");
}

/// Connects `c` sockets, says ready, reads `events` frames on each; latency and CPU.
fn read_paced(addr: SocketAddr, c: usize, events: usize) -> Value {
    let readers = threads();
    let shares = deal(
        (0..c).map(|_| {
            let s = TcpStream::connect(addr).expect("connect a floor socket");
            s.set_nonblocking(true).unwrap();
            mio::net::TcpStream::from_std(s)
        }),
        readers,
    );
    let ready = Arc::new(Barrier::new(readers + 1));
    let handles: Vec<_> = shares
        .into_iter()
        .map(|mine| {
            let ready = ready.clone();
            std::thread::spawn(move || read_share(mine, events, &ready))
        })
        .collect();
    ready.wait();
    println!("ready");
    let mut latencies = Vec::new();
    let mut cpu = Duration::ZERO;
    for h in handles {
        let (l, c) = h.join().unwrap();
        latencies.extend(l);
        cpu += c;
    }
    latencies.sort_unstable();
    let frames = latencies.len();
    json!({
        "framesDelivered": frames,
        "latencyMs": {
            "p50": percentile(&latencies, 0.50) / 1000.0,
            "p99": percentile(&latencies, 0.99) / 1000.0,
        },
        "clientCpuUsPerFrame": cpu.as_secs_f64() * 1e6 / frames.max(1) as f64,
        "completeness": { "missing": (c * events).saturating_sub(frames), "duplicated": 0, "reordered": 0 },
    })
}

/// One reader thread: its sockets' frames' latencies (µs) and its CPU time.
fn read_share(
    mut mine: Vec<mio::net::TcpStream>,
    events: usize,
    ready: &Barrier,
) -> (Vec<u64>, Duration) {
    let mut poll = Poll::new().unwrap();
    for (i, s) in mine.iter_mut().enumerate() {
        poll.registry()
            .register(s, Token(i), Interest::READABLE)
            .unwrap();
    }
    // Per socket: bytes of the current frame read so far, and its time stamp.
    let mut partial = vec![(0usize, [0u8; 8]); mine.len()];
    let want = mine.len() * events;
    let mut latencies = Vec::with_capacity(want);
    let mut buf = vec![0u8; 64 * 1024];
    let mut pollev = Events::with_capacity(1024);
    ready.wait();
    // The whole loop, `epoll_wait` included (blocked, it costs nothing).
    let c0 = thread_cpu();
    while latencies.len() < want {
        poll.poll(&mut pollev, Some(STALL)).unwrap();
        if pollev.is_empty() {
            break;
        }
        for event in &pollev {
            let i = event.token().0;
            let now = now_us();
            let (got, stamp) = &mut partial[i];
            loop {
                let n = match mine[i].read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let mut off = 0;
                while off < n {
                    let take = (FRAME - *got).min(n - off);
                    if *got < 8 {
                        let upto = take.min(8 - *got);
                        stamp[*got..*got + upto].copy_from_slice(&buf[off..off + upto]);
                    }
                    *got += take;
                    off += take;
                    if *got == FRAME {
                        latencies.push(now.saturating_sub(u64::from_le_bytes(*stamp)));
                        *got = 0;
                    }
                }
                // A short read drained the socket (a later arrival is a new edge).
                if n < buf.len() {
                    break;
                }
            }
        }
    }
    (latencies, thread_cpu() - c0)
}

/// Opens `c` sockets, [`IN_FLIGHT`] at once over one thread per core, each sending the
/// request and reading the whole response; rate and connect time.
fn open_all(addr: SocketAddr, c: usize) -> Value {
    let workers = threads();
    let start = Instant::now();
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let mine = c / workers + usize::from(w < c % workers);
            std::thread::spawn(move || open_share(addr, mine, IN_FLIGHT / workers))
        })
        .collect();
    let mut times = Vec::new();
    let mut failed = 0;
    let mut held = Vec::new();
    for h in handles {
        let (t, f, sockets) = h.join().unwrap();
        times.extend(t);
        failed += f;
        held.push(sockets);
    }
    let elapsed = start.elapsed();
    times.sort_unstable();
    json!({
        "connectRate": times.len() as f64 / elapsed.as_secs_f64(),
        "connectMs": { "p50": percentile(&times, 0.50) / 1000.0, "p99": percentile(&times, 0.99) / 1000.0 },
        "connectionsFailed": failed,
    })
}

/// One opening thread: connect times (µs), failures, and the sockets (held open).
fn open_share(
    addr: SocketAddr,
    n: usize,
    in_flight: usize,
) -> (Vec<u64>, usize, Vec<mio::net::TcpStream>) {
    struct Opening {
        socket: mio::net::TcpStream,
        started: Instant,
        sent: bool,
        got: usize,
    }
    let mut poll = Poll::new().unwrap();
    let mut events = Events::with_capacity(1024);
    let mut open: Vec<Option<Opening>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let (mut started, mut inflight, mut failed) = (0, 0, 0);
    let mut times = Vec::with_capacity(n);
    let mut held = Vec::with_capacity(n);
    let request = [b'q'; REQUEST];
    let mut buf = [0u8; 4096];
    while times.len() + failed < n {
        while inflight < in_flight && started < n {
            let Ok(mut socket) = mio::net::TcpStream::connect(addr) else {
                failed += 1;
                started += 1;
                continue;
            };
            let slot = free.pop().unwrap_or_else(|| {
                open.push(None);
                open.len() - 1
            });
            poll.registry()
                .register(
                    &mut socket,
                    Token(slot),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .unwrap();
            open[slot] = Some(Opening {
                socket,
                started: Instant::now(),
                sent: false,
                got: 0,
            });
            started += 1;
            inflight += 1;
        }
        poll.poll(&mut events, Some(STALL)).unwrap();
        if events.is_empty() {
            break;
        }
        for event in &events {
            let slot = event.token().0;
            let Some(o) = open[slot].as_mut() else {
                continue;
            };
            let mut done = false;
            let mut lost = event.is_error() || matches!(o.socket.take_error(), Ok(Some(_)));
            if !lost && event.is_writable() && !o.sent {
                lost = !matches!(o.socket.write(&request), Ok(REQUEST));
                o.sent = true;
            }
            while !lost && o.sent && event.is_readable() && o.got < RESPONSE {
                match o.socket.read(&mut buf) {
                    Ok(0) => lost = true,
                    Ok(n) => o.got += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => lost = true,
                }
                done = o.got >= RESPONSE;
            }
            if done || lost {
                let mut o = open[slot].take().unwrap();
                poll.registry().deregister(&mut o.socket).unwrap();
                free.push(slot);
                inflight -= 1;
                if done {
                    times.push(o.started.elapsed().as_micros() as u64);
                    held.push(o.socket);
                } else {
                    failed += 1;
                }
            }
        }
    }
    // What a stall left unfinished failed too.
    let failed = n - times.len();
    (times, failed, held)
}
