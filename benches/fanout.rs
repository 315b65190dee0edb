//! The fan-out benchmark: `syncprobe serve` and `syncprobe load` as separate processes
//! on this machine, at C = 1,000 and C = 10,000 connections in one organization, in
//! burst mode (events as fast as possible) and paced mode (isolated events), plus idle
//! memory per connection. It prints delivered frames/s, p50/p99/max latency, server
//! RSS per idle connection, server and client CPU per frame, and the connect rate.
//!
//! Run: `cargo bench --bench fanout` (about a minute). `-- --quick` runs only C = 1,000;
//! `-- --hold` adds 18,000 connections held for a minute with no error.
//! `-- --cluster` runs instead the several-instances comparison: one instance alone, one
//! instance over Redis, and three instances over one Redis with the load's sockets spread
//! over them round-robin (events published on the first), in the same run; it needs
//! `redis-server` (started on a free port, without persistence).
//! Server CPU and RSS are read from /proc (Linux).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_syncprobe");

struct Server {
    child: Child,
    url: String,
}

impl Server {
    fn start() -> Server {
        Server::start_with(&[])
    }

    /// A server with `extra` flags (`--redis URL`).
    fn start_with(extra: &[&str]) -> Server {
        let mut child = Command::new(EXE)
            .args([
                "serve",
                "--max-connections",
                "40000",
                "--max-connections-per-org",
                "40000",
                "--listen",
                "127.0.0.1:0",
                "--json",
                "--lag-limit",
                "65536",
                "--ping-interval",
                "0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start syncprobe serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let record: Value = serde_json::from_str(&line).expect("listening record");
        let url = record["data"]["url"].as_str().unwrap().to_string();
        Server { child, url }
    }

    /// Resident memory, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// CPU time (user + system) so far.
    fn cpu(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start after ')'.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
            + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0);
        // SAFETY: sysconf reads a constant of the system.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `load` against `server`, sampling the server's peak RSS meanwhile.
fn load(server: &Server, args: &[&str]) -> (Value, u64, Duration) {
    load_spread(&[server], args)
}

/// Runs `load` with one `--url` per server (sockets spread round-robin), sampling the
/// first server's peak RSS; the CPU time is the servers' sum.
fn load_spread(servers: &[&Server], args: &[&str]) -> (Value, u64, Duration) {
    let server = servers[0];
    let cpu_of = |servers: &[&Server]| servers.iter().map(|s| s.cpu()).sum::<Duration>();
    let cpu_before = cpu_of(servers);
    let urls: Vec<&str> = servers
        .iter()
        .flat_map(|s| ["--url", s.url.as_str()])
        .collect();
    let mut child = Command::new(EXE)
        .arg("load")
        .args(&urls)
        .args([
            "--org",
            "org-bench",
            "--json",
            "--max-pending",
            "1024",
            "--drain-timeout",
            "20s",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start syncprobe load");
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(server.rss());
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let cpu = cpu_of(servers) - cpu_before;
    let text = String::from_utf8_lossy(&output.stdout);
    let summary = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["type"] == "summary")
        .map(|r| r["data"].clone())
        .unwrap_or_else(|| panic!("load printed no summary (exit {:?})", output.status.code()));
    (summary, peak, cpu)
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn row(name: &str, connections: usize, summary: &Value, server_cpu: Duration) {
    let frames = f(&summary["framesDelivered"]);
    let lat = &summary["latencyMs"];
    let c = &summary["completeness"];
    let errors: u64 = summary["errors"]
        .as_object()
        .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
    println!(
        "{name:<44} C={connections:<6} frames {frames:>9.0}  {:>10.0} frames/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  server {:>5.2} µs/frame  client {:>5.2} µs/frame  connect {:>6.0}/s  missing {} dup {} errors {errors}",
        f(&summary["deliveredPerSec"]),
        f(&lat["p50"]),
        f(&lat["p99"]),
        f(&lat["max"]),
        server_cpu.as_secs_f64() * 1e6 / frames.max(1.0),
        f(&summary["clientCpuUsPerFrame"]),
        f(&summary["connectRate"]),
        c["missing"],
        c["duplicated"],
    );
}

/// A `redis-server` on a free port without persistence; killed on drop.
struct RedisServer {
    child: Child,
    url: String,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (apt-get install redis-server)");
        let server = RedisServer {
            child,
            url: format!("redis://127.0.0.1:{port}/"),
        };
        for _ in 0..500 {
            let pong = redis::Client::open(server.url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if pong.is_ok() {
                return server;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server on {port} never answered PING");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// p99 per URL of a spread run, e.g. `p99 per URL 3.1 / 4.0 / 4.2 ms`.
fn per_url(summary: &Value) -> String {
    let p99s: Vec<String> = summary["urls"]
        .as_array()
        .map(|urls| {
            urls.iter()
                .map(|u| format!("{:.2}", f(&u["latencyMs"]["p99"])))
                .collect()
        })
        .unwrap_or_default();
    format!("p99 per URL {} ms", p99s.join(" / "))
}

/// One instance alone, one over Redis, three over one Redis: burst and paced, same C.
fn cluster() {
    let c = 3_000;
    let conns = c.to_string();
    let redis = RedisServer::start();
    println!("several instances: C = {c} in one organization, events published on the first URL\n");
    type Setup = (&'static str, usize, bool);
    let setups: [Setup; 3] = [
        ("1 instance, in-process", 1, false),
        ("1 instance over Redis", 1, true),
        ("3 instances over Redis", 3, true),
    ];
    for (name, n, over_redis) in setups {
        let extra: Vec<&str> = if over_redis {
            vec!["--redis", redis.url.as_str()]
        } else {
            vec![]
        };
        for (mode, args) in [
            ("burst (300 events)", vec!["--events", "300"]),
            (
                "paced (10 events/s)",
                vec!["--events", "40", "--rate", "10"],
            ),
        ] {
            let servers: Vec<Server> = (0..n).map(|_| Server::start_with(&extra)).collect();
            let refs: Vec<&Server> = servers.iter().collect();
            let mut all = vec!["--connections", conns.as_str()];
            all.extend(args);
            let (summary, _, cpu) = load_spread(&refs, &all);
            row(&format!("{name}: {mode}"), c, &summary, cpu);
            if n > 1 {
                println!("{:<44} {}", "", per_url(&summary));
            }
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--cluster") {
        cluster();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let hold = args.iter().any(|a| a == "--hold");
    println!(
        "syncprobe fan-out benchmark: serve and load as separate processes, one organization\n"
    );
    let sizes: &[usize] = if quick { &[1_000] } else { &[1_000, 10_000] };
    for &c in sizes {
        let conns = c.to_string();
        // Idle memory: connections open, no events.
        let server = Server::start();
        std::thread::sleep(Duration::from_millis(200));
        let base = server.rss();
        let (idle, peak, _) = load(
            &server,
            &["--connections", &conns, "--passive", "--duration", "2s"],
        );
        println!(
            "{:<28} C={c:<6} server RSS {:.1} KB per idle connection ({} MB at rest, {} MB with C open), connect {:.0}/s, connect p99 {:.1} ms",
            "idle",
            (peak.saturating_sub(base)) as f64 / 1024.0 / c as f64,
            base / (1 << 20),
            peak / (1 << 20),
            f(&idle["connectRate"]),
            f(&idle["connectMs"]["p99"]),
        );
        drop(server);
        // Burst: events as fast as the server publishes them.
        let events = (2_000_000 / c).clamp(100, 1000).to_string();
        let server = Server::start();
        let (burst, _, cpu) = load(&server, &["--connections", &conns, "--events", &events]);
        row("burst", c, &burst, cpu);
        drop(server);
        // Paced: isolated events, each delivered to every subscriber before the next is
        // published (20 per second at C = 1,000; 4 per second at C = 10,000).
        let (rate, count) = if c <= 1_000 {
            ("20", "60")
        } else {
            ("4", "24")
        };
        let server = Server::start();
        let (paced, _, cpu) = load(
            &server,
            &["--connections", &conns, "--events", count, "--rate", rate],
        );
        row(&format!("paced ({rate} events/s)"), c, &paced, cpu);
        drop(server);
    }
    if hold {
        let server = Server::start();
        let (held, peak, _) = load(
            &server,
            &[
                "--connections",
                "18000",
                "--passive",
                "--duration",
                "60s",
                "--timeout",
                "30s",
            ],
        );
        let errors: u64 = held["errors"]
            .as_object()
            .map_or(0, |e| e.values().filter_map(Value::as_u64).sum());
        println!(
            "{:<28} C=18000  opened {} failed {} errors {errors} over 60 s; server peak RSS {} MB; connect {:.0}/s",
            "held for a minute",
            held["connectionsOpened"],
            held["connectionsFailed"],
            peak / (1 << 20),
            f(&held["connectRate"]),
        );
    }
}
