//! The fan-out benchmark: `syncprobe serve` and a Node.js server on the `ws` library
//! (`benches/node/server.js`, the plain way a Node developer writes it) doing the same
//! job, each measured by `syncprobe load` as a separate process on this machine, one
//! organization, in the same run. Every scenario runs against serve and Node in turn
//! (serve, node, serve, node: `--rounds 2`), and prints one block: a row per run and
//! the ratio serve / node of the rounds' means.
//!
//! Scenarios, at C = 10,000 connections (`-- --quick`: C = 1,000 instead):
//! - idle: the connections opened all at once and held, no events: server RSS growth
//!   per connection, connect rate and connect p99;
//! - burst: 100 events as fast as the server publishes them: delivered frames/s;
//! - paced: 20 isolated events at 2 per second: fan-out latency p50 and p99;
//!
//! and for both event scenarios the server's CPU per delivered frame (over the
//! event source and the drain, not the connect phase), the load client's own CPU per
//! frame, and the completeness (missing / duplicated / reordered).
//!
//! The idle and paced blocks also run the kernel's floor for their job (`floor.rs`:
//! raw TCP over loopback between this benchmark and a child, no WebSocket, no server),
//! so that each block ends with two ratios: serve / node and serve / floor. The idle
//! block also runs serve with `--handshake-timeout 0` (`serve, no ping`): the opening
//! ping that serve sends with CONNECTED, and the pong it waits for, cost each
//! connection a segment each way, which the baseline does not send.
//!
//! Run: `cargo bench --bench fanout` (about two and a half minutes here); `-- --rounds 1`
//! halves it.
//! The Node baseline's `ws` is installed with `npm ci` into `benches/node/node_modules`
//! (git-ignored) when it is not there; without `node` the benchmark says
//! `baseline skipped: node not found` and measures serve alone.
//! `-- --hold` adds 18,000 connections to serve held for a minute with no error.
//! `-- --cluster` runs instead the several-instances comparison: one instance alone, one
//! instance over Redis, and three instances over one Redis with the load's sockets spread
//! over them round-robin (events published on the first), in the same run; it needs
//! `redis-server` (started on a free port, without persistence).
//! Server CPU and RSS are read from /proc (Linux).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod floor;

const EXE: &str = env!("CARGO_BIN_EXE_syncprobe");
/// How often a run samples the server's RSS and CPU time.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
/// How long a fresh server settles before its RSS at rest is read.
const SETTLE: Duration = Duration::from_millis(200);
/// Flags of every `load` run.
const LOAD_FLAGS: &[&str] = &[
    "--org",
    "org-bench",
    "--json",
    "--max-pending",
    "1024",
    "--drain-timeout",
    "60s",
];

/// The Node baseline's folder.
fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/node")
}

/// Which server a run measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// `syncprobe serve` without a heartbeat (the baseline has none).
    Serve,
    /// `node benches/node/server.js`.
    Node,
    /// The kernel's floor for the job: raw TCP, no server (`floor.rs`).
    Floor,
    /// `syncprobe serve --handshake-timeout 0`: no opening ping to answer (the
    /// baseline sends none), so what that check costs the connect rate shows.
    ServeNoPing,
}

impl Target {
    fn label(self) -> &'static str {
        match self {
            Target::Serve => "serve",
            Target::Node => "node ws",
            Target::Floor => "floor",
            Target::ServeNoPing => "serve, no ping",
        }
    }

    fn start(self) -> Server {
        match self {
            Target::Serve => Server::serve(&[]),
            Target::Node => Server::node(),
            Target::ServeNoPing => Server::serve(&["--handshake-timeout", "0"]),
            Target::Floor => unreachable!("the floor runs no server"),
        }
    }
}

/// Installs the Node baseline's `ws` (`npm ci`) unless it is there; `false` (said
/// why) when Node or npm is missing or the install failed.
fn node_baseline() -> bool {
    let found = |tool: &str| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found("node") {
        println!("baseline skipped: node not found\n");
        return false;
    }
    let dir = node_dir();
    if dir.join("node_modules/ws/package.json").exists() {
        return true;
    }
    if !found("npm") {
        println!("baseline skipped: npm not found (it installs the baseline's ws)\n");
        return false;
    }
    let installed = Command::new("npm")
        .args(["ci", "--silent", "--no-audit", "--no-fund"])
        .current_dir(&dir)
        .status();
    match installed {
        Ok(s) if s.success() => true,
        other => {
            println!(
                "baseline skipped: `npm ci` in {} failed ({other:?})\n",
                dir.display()
            );
            false
        }
    }
}

/// A server process and its URL; killed on drop.
struct Server {
    child: Child,
    url: String,
}

impl Server {
    /// `syncprobe serve` with `extra` flags (`--redis URL`).
    fn serve(extra: &[&str]) -> Server {
        let child = Command::new(EXE)
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
        Server::listening(child)
    }

    /// The Node baseline (it inherits this process's raised open-file limit).
    fn node() -> Server {
        let child = Command::new("node")
            .arg("server.js")
            .current_dir(node_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start node server.js");
        Server::listening(child)
    }

    /// Reads the `listening` record both servers print first.
    fn listening(mut child: Child) -> Server {
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

/// What one `load` run measured, with the servers' side of it.
struct Run {
    summary: Value,
    /// The first server's RSS when the run started, and its peak during the run.
    rss_at_rest: u64,
    rss_peak: u64,
    /// The servers' CPU time over the event source and the drain (the connect phase
    /// and the closes excluded).
    server_cpu: Duration,
}

/// Runs `load` with one `--url` per server (sockets spread round-robin), sampling the
/// first server's RSS and every server's CPU time meanwhile.
fn load(servers: &[&Server], args: &[&str]) -> Run {
    let cpu_of = || servers.iter().map(|s| s.cpu()).sum::<Duration>();
    let urls: Vec<&str> = servers
        .iter()
        .flat_map(|s| ["--url", s.url.as_str()])
        .collect();
    let rss_at_rest = servers[0].rss();
    let spawned = Instant::now();
    let mut child = Command::new(EXE)
        .arg("load")
        .args(&urls)
        .args(LOAD_FLAGS)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start syncprobe load");
    // The records, each with when it arrived: a progress record places the run's
    // start (its `elapsedMs`) on this process's clock.
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .map(|r| (Instant::now(), r))
            .collect::<Vec<_>>()
    });
    let mut samples: Vec<(Instant, Duration)> = Vec::new();
    let mut rss_peak = 0;
    while child.try_wait().unwrap().is_none() {
        rss_peak = rss_peak.max(servers[0].rss());
        samples.push((Instant::now(), cpu_of()));
        std::thread::sleep(SAMPLE_EVERY);
    }
    let status = child.wait().unwrap();
    let records = reader.join().unwrap();
    let summary = records
        .iter()
        .find(|(_, r)| r["type"] == "summary")
        .map(|(_, r)| r["data"].clone())
        .unwrap_or_else(|| panic!("load printed no summary (exit {:?})", status.code()));
    let started = records
        .iter()
        .filter(|(_, r)| r["type"] == "progress")
        .filter_map(|(at, r)| {
            let ms = r["data"]["elapsedMs"].as_f64()?;
            at.checked_sub(Duration::from_secs_f64(ms / 1000.0))
        })
        .min()
        .unwrap_or(spawned);
    let phases = &summary["phasesMs"];
    let ms = |v: &Value| Duration::from_secs_f64(v.as_f64().unwrap_or(0.0) / 1000.0);
    let events_from = started + ms(&phases["connect"]);
    let events_to = events_from + ms(&phases["events"]) + ms(&phases["drain"]);
    // The last sample before each end (the next may hold the connect's or closes' work).
    let cpu_at = |t: Instant| {
        samples
            .iter()
            .take_while(|(at, _)| *at <= t)
            .last()
            .map_or(Duration::ZERO, |(_, cpu)| *cpu)
    };
    Run {
        summary,
        rss_at_rest,
        rss_peak,
        server_cpu: cpu_at(events_to).saturating_sub(cpu_at(events_from)),
    }
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn errors(summary: &Value) -> u64 {
    summary["errors"]
        .as_object()
        .map_or(0, |e| e.values().filter_map(Value::as_u64).sum())
}

/// One figure of a scenario's block.
struct Column {
    header: &'static str,
    value: fn(&Run, usize) -> Cell,
    /// Whether a floor's run has this figure.
    floor: bool,
}

/// A figure: a number (with its decimals, the ratio row divides them) or text.
enum Cell {
    Number(f64, usize),
    Text(String),
}

impl Cell {
    fn show(&self) -> String {
        match self {
            Cell::Number(v, decimals) => format!("{v:.decimals$}"),
            Cell::Text(t) => t.clone(),
        }
    }
}

fn frames(run: &Run) -> f64 {
    f(&run.summary["framesDelivered"]).max(1.0)
}

const KB_PER_CONNECTION: Column = Column {
    header: "KB/conn",
    floor: false,
    value: |r, c| {
        Cell::Number(
            r.rss_peak.saturating_sub(r.rss_at_rest) as f64 / 1024.0 / c as f64,
            2,
        )
    },
};
const CONNECT_RATE: Column = Column {
    header: "connect/s",
    floor: true,
    value: |r, _| Cell::Number(f(&r.summary["connectRate"]), 0),
};
const CONNECT_P99: Column = Column {
    header: "connect p99 ms",
    floor: true,
    value: |r, _| Cell::Number(f(&r.summary["connectMs"]["p99"]), 1),
};
const RSS: Column = Column {
    header: "RSS rest/peak MB",
    floor: false,
    value: |r, _| Cell::Text(format!("{}/{}", r.rss_at_rest >> 20, r.rss_peak >> 20)),
};
const FRAMES_PER_SEC: Column = Column {
    header: "frames/s",
    floor: false,
    value: |r, _| Cell::Number(f(&r.summary["deliveredPerSec"]), 0),
};
const P50: Column = Column {
    header: "p50 ms",
    floor: true,
    value: |r, _| Cell::Number(f(&r.summary["latencyMs"]["p50"]), 2),
};
const P99: Column = Column {
    header: "p99 ms",
    floor: true,
    value: |r, _| Cell::Number(f(&r.summary["latencyMs"]["p99"]), 2),
};
const SERVER_CPU: Column = Column {
    header: "server µs/frame",
    floor: true,
    value: |r, _| Cell::Number(r.server_cpu.as_secs_f64() * 1e6 / frames(r), 2),
};
const CLIENT_CPU: Column = Column {
    header: "client µs/frame",
    floor: true,
    value: |r, _| Cell::Number(f(&r.summary["clientCpuUsPerFrame"]), 2),
};
const COMPLETENESS: Column = Column {
    header: "miss/dup/reord",
    floor: true,
    value: |r, _| {
        let c = &r.summary["completeness"];
        Cell::Text(format!(
            "{}/{}/{}",
            c["missing"], c["duplicated"], c["reordered"]
        ))
    },
};
const ERRORS: Column = Column {
    header: "errors",
    floor: true,
    value: |r, _| {
        let failed = r.summary["connectionsFailed"].as_u64().unwrap_or(0);
        Cell::Text((errors(&r.summary) + failed).to_string())
    },
};

/// One measurement, run against each target in turn.
struct Scenario {
    name: String,
    /// `load` flags besides the common ones.
    args: Vec<String>,
    columns: &'static [Column],
    /// The kernel's floor for the same job at C connections (`floor.rs`): its summary,
    /// in load's field names, and its server side's CPU time.
    floor: Option<fn(usize) -> (Value, Duration)>,
    /// Variants of serve run in each round too (after the targets).
    variants: &'static [Target],
}

impl Scenario {
    /// Runs `rounds` × `targets` (alternating) at `c` connections and prints the block.
    fn run(&self, c: usize, targets: &[Target], rounds: usize) {
        println!("{} · C = {c}", self.name);
        let width = |col: &Column| col.header.chars().count().max(10);
        let header: String = self
            .columns
            .iter()
            .map(|col| format!("  {:>w$}", col.header, w = width(col)))
            .collect();
        println!("  {:<14}{header}", "");
        let mut runs: Vec<(Target, Run)> = Vec::new();
        let floor = self.floor.map(|_| Target::Floor);
        for _ in 0..rounds {
            for &target in targets.iter().chain(self.variants).chain(&floor) {
                let run = match (target, self.floor) {
                    (Target::Floor, Some(job)) => {
                        let (summary, server_cpu) = job(c);
                        Run {
                            summary,
                            rss_at_rest: 0,
                            rss_peak: 0,
                            server_cpu,
                        }
                    }
                    _ => {
                        let server = target.start();
                        std::thread::sleep(SETTLE);
                        let mut args = vec!["--connections".to_string(), c.to_string()];
                        args.extend(self.args.iter().cloned());
                        let args: Vec<&str> = args.iter().map(String::as_str).collect();
                        load(&[&server], &args)
                    }
                };
                let cells: String = self
                    .columns
                    .iter()
                    .map(|col| {
                        let cell = if target == Target::Floor && !col.floor {
                            "–".to_string()
                        } else {
                            (col.value)(&run, c).show()
                        };
                        format!("  {:>w$}", cell, w = width(col))
                    })
                    .collect();
                println!("  {:<14}{cells}", target.label());
                runs.push((target, run));
            }
        }
        let mean = |target: Target, col: &Column| {
            let values: Vec<f64> = runs
                .iter()
                .filter(|(t, _)| *t == target)
                .filter_map(|(_, run)| match (col.value)(run, c) {
                    Cell::Number(v, _) => Some(v),
                    Cell::Text(_) => None,
                })
                .collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        // serve / node, then serve / floor: the ratios of the rounds' means.
        for (label, other) in [("serve/node", Target::Node), ("serve/floor", Target::Floor)] {
            if !runs.iter().any(|(t, _)| *t == other) {
                continue;
            }
            let cells: String = self
                .columns
                .iter()
                .map(|col| {
                    let ratio = mean(Target::Serve, col)
                        .zip(mean(other, col))
                        .filter(|_| other != Target::Floor || col.floor)
                        .map_or(String::new(), |(s, n)| format!("{:.2}×", s / n));
                    format!("  {:>w$}", ratio, w = width(col))
                })
                .collect();
            println!("  {:<14}{cells}", label);
        }
        println!();
    }
}

fn scenarios() -> Vec<Scenario> {
    let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
    vec![
        Scenario {
            name: "idle: connections opened all at once, held 2 s, no events".into(),
            args: args(&["--passive", "--duration", "2s"]),
            columns: &[KB_PER_CONNECTION, CONNECT_RATE, CONNECT_P99, RSS, ERRORS],
            floor: Some(floor::connect),
            variants: &[Target::ServeNoPing],
        },
        Scenario {
            name: "burst: 100 events as fast as the server publishes them".into(),
            args: args(&["--events", "100"]),
            floor: None,
            variants: &[],
            columns: &[
                FRAMES_PER_SEC,
                P99,
                SERVER_CPU,
                CLIENT_CPU,
                COMPLETENESS,
                ERRORS,
            ],
        },
        Scenario {
            name: "paced: 20 isolated events at 2 per second".into(),
            args: args(&["--events", "20", "--rate", "2"]),
            columns: &[P50, P99, SERVER_CPU, CLIENT_CPU, COMPLETENESS, ERRORS],
            floor: Some(|c| floor::paced(c, 20)),
            variants: &[],
        },
    ]
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

/// One line of a `--cluster` run.
fn cluster_row(name: &str, connections: usize, run: &Run) {
    let summary = &run.summary;
    let frames = f(&summary["framesDelivered"]);
    let lat = &summary["latencyMs"];
    let c = &summary["completeness"];
    println!(
        "{name:<44} C={connections:<6} frames {frames:>9.0}  {:>10.0} frames/s  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  server {:>5.2} µs/frame  client {:>5.2} µs/frame  connect {:>6.0}/s  missing {} dup {} errors {}",
        f(&summary["deliveredPerSec"]),
        f(&lat["p50"]),
        f(&lat["p99"]),
        f(&lat["max"]),
        run.server_cpu.as_secs_f64() * 1e6 / frames.max(1.0),
        f(&summary["clientCpuUsPerFrame"]),
        f(&summary["connectRate"]),
        c["missing"],
        c["duplicated"],
        errors(summary),
    );
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
            let servers: Vec<Server> = (0..n).map(|_| Server::serve(&extra)).collect();
            let refs: Vec<&Server> = servers.iter().collect();
            let mut all = vec!["--connections", conns.as_str()];
            all.extend(args);
            let run = load(&refs, &all);
            cluster_row(&format!("{name}: {mode}"), c, &run);
            if n > 1 {
                println!("{:<44} {}", "", per_url(&run.summary));
            }
        }
    }
}

/// 18,000 connections to serve held for a minute.
fn hold() {
    let server = Server::serve(&[]);
    std::thread::sleep(SETTLE);
    let run = load(
        &[&server],
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
    let held = &run.summary;
    println!(
        "{:<28} C=18000  opened {} failed {} errors {} over 60 s; server peak RSS {} MB; connect {:.0}/s",
        "held for a minute",
        held["connectionsOpened"],
        held["connectionsFailed"],
        errors(held),
        run.rss_peak >> 20,
        f(&held["connectRate"]),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--floor-child") {
        floor::child_main(&args[i + 1..]);
        return;
    }
    // The servers (Node has no way to raise its own) inherit the raised limit.
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if args.iter().any(|a| a == "--cluster") {
        cluster();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .map_or(2, |n| n.parse().expect("--rounds N"));
    println!(
        "syncprobe fan-out benchmark: serve and a Node.js ws server, each measured by syncprobe load as a separate process, one organization\n"
    );
    let targets: &[Target] = if node_baseline() {
        &[Target::Serve, Target::Node]
    } else {
        &[Target::Serve]
    };
    let c = if quick { 1_000 } else { 10_000 };
    for scenario in scenarios() {
        scenario.run(c, targets, rounds);
    }
    if args.iter().any(|a| a == "--hold") {
        hold();
    }
}
