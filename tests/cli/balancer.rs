//! Through a real HAProxy configured with the block in `docs/deployment.md` (only the
//! addresses changed), in front of `serve` instances.
//!
//! `.ci/run` installs HAProxy (Debian's `haproxy`); elsewhere these tests say they are
//! skipped unless `CI` is set.

use std::net::TcpListener as StdListener;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::support::*;

/// The ```haproxy block of docs/deployment.md.
fn documented_config() -> String {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/deployment.md"))
            .unwrap();
    let start = doc
        .find("```haproxy\n")
        .expect("docs/deployment.md has a haproxy block");
    let block = &doc[start + "```haproxy\n".len()..];
    block[..block.find("```").unwrap()].to_string()
}

/// The documented config with its `bind` on `front` and one `server` line per backend.
fn config_for(front: u16, backends: &[std::net::SocketAddr]) -> String {
    let mut out = String::new();
    let mut servers_written = false;
    for line in documented_config().lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("bind ") {
            out.push_str(&format!("    bind 127.0.0.1:{front}\n"));
        } else if trimmed.starts_with("server ") {
            if !servers_written {
                for (i, addr) in backends.iter().enumerate() {
                    out.push_str(&format!("    server s{i} {addr} check\n"));
                }
                servers_written = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(servers_written, "the documented block has server lines");
    out
}

/// A running HAProxy; killed when dropped.
pub struct Balancer {
    pub port: u16,
    _child: Child,
    _dir: tempfile::TempDir,
}

impl Balancer {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub fn haproxy_present() -> bool {
    let found = std::process::Command::new("haproxy")
        .arg("-v")
        .output()
        .is_ok();
    if !found {
        assert!(std::env::var_os("CI").is_none(), "CI must install haproxy");
        eprintln!("skipped: haproxy not found (apt-get install haproxy)");
    }
    found
}

/// Starts HAProxy in front of `backends` and waits (bounded) until it accepts and has
/// marked every backend up.
pub async fn start_balancer(backends: &[std::net::SocketAddr]) -> Balancer {
    let port = {
        let probe = StdListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(&config, config_for(port, backends)).unwrap();
    let check = std::process::Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "haproxy -c rejects the documented config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let log = dir.path().join("haproxy.log");
    let child = Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut balancer = Balancer {
        port,
        _child: child,
        _dir: dir,
    };
    // Ready when a request through it reaches a backend (503 while none is up yet).
    for _ in 0..200 {
        if let Ok(Some(status)) = balancer._child.try_wait() {
            panic!(
                "haproxy exited ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if let Ok(Ok((200, _))) = tokio::time::timeout(
            Duration::from_secs(1),
            try_get(&format!("{}/healthz", balancer.url())),
        )
        .await
        {
            return balancer;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("haproxy on {port} never passed a request to a backend");
}

async fn try_get(url: &str) -> Result<(u16, String), reqwest::Error> {
    let response = http_client().get(url).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

#[tokio::test]
async fn the_documented_haproxy_config_passes_upgrades_and_the_rest_api() {
    if !haproxy_present() {
        return;
    }
    let server = TestServer::start().await;
    let balancer = start_balancer(&[server.addr]).await;
    let out = run_cli(&["connect", "org-lb", "--url", &balancer.url(), "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        records(&out).iter().any(is_connected_record),
        "{}",
        stdout(&out)
    );
    let out = run_cli(&[
        "enqueue",
        "org-lb",
        "--url",
        &balancer.url(),
        "--modification-id",
        "m-lb",
        "--wait",
    ])
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `count` events of `kind` for `org`, published through `base` (the balancer).
async fn publish_through(base: &str, org: &str, kind: &str, pfa: &str, count: u64) {
    let body = serde_json::json!({"organizationId": org, "type": kind, "pfaId": pfa,
        "count": count});
    let (status, answer) = post(&format!("{base}/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_instance_behind_haproxy_loses_nothing_for_a_reconnecting_watch() {
    if !haproxy_present() {
        return;
    }
    let Some(redis) = crate::redis::RedisServer::start() else {
        return;
    };
    let addr_of = |listening: &serde_json::Value| -> std::net::SocketAddr {
        listening["data"]["addr"].as_str().unwrap().parse().unwrap()
    };
    let (a, a_listening) = crate::redis::child_instance(&redis, &[]).await;
    let (b, b_listening) = crate::redis::child_instance(&redis, &[]).await;
    let (a_addr, b_addr) = (addr_of(&a_listening), addr_of(&b_listening));
    let mut instances = vec![(a, a_addr), (b, b_addr)];
    let balancer = start_balancer(&[a_addr, b_addr]).await;
    let org = "org-lb-failover";
    let mut run = spawn_cli(&[
        "watch-sync",
        org,
        "--url",
        &balancer.url(),
        "--reconnect",
        "--reconnect-base",
        "50ms",
        "--count",
        "9",
        "--fail-on-gap",
        "--timeout",
        "30s",
        "--connect-timeout",
        "2s",
        "--json",
    ]);
    run.wait_for_connected().await;
    publish_through(&balancer.url(), org, "SYNC_QUEUED", "pfa-1", 3).await;
    run.wait_for("seq 3", |r| r["type"] == "event" && r["data"]["seq"] == 3)
        .await;
    // Kill -9 the instance that holds the socket; the other one stays.
    let mut holder = None;
    for (i, (_, addr)) in instances.iter().enumerate() {
        let stats = get_json(&format!("http://{addr}/api/ws/stats")).await;
        if stats["totalConnections"] == 1 {
            holder = Some(i);
        }
    }
    let holder = holder.expect("one instance holds the watch's socket");
    let (doomed, _) = instances.remove(holder);
    let killed = std::process::Command::new("kill")
        .args(["-9", &doomed.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Published through the balancer while the client is between instances.
    publish_through(&balancer.url(), org, "SYNC_PROCESSING", "pfa-1", 3).await;
    run.wait_for_connected().await;
    publish_through(&balancer.url(), org, "SYNC_PROCESSING", "pfa-2", 3).await;
    let finished = run.finish().await;
    assert_eq!(finished.code(), Some(0), "{}", finished.stderr);
    let seqs = crate::support::event_seqs(&finished.records);
    assert_eq!(
        seqs,
        (1..=9).collect::<Vec<_>>(),
        "every event exactly once"
    );
    drop(doomed);
}
