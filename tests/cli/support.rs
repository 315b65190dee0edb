//! Helpers shared by the integration tests: an in-process server on port 0, a
//! WebSocket client with timeouts, REST calls, and a sanitised run of the binary.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Output;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use syncprobe::server::{self, Config};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound of every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server config whose lifecycles run in milliseconds.
pub fn fast_config() -> Config {
    let mut config = Config::default();
    config.worker.processing_time = Duration::from_millis(2);
    config.worker.retry_base = Duration::from_millis(5);
    config
}

pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::with(fast_config()).await
    }

    pub async fn with(config: Config) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::on(listener, config)
    }

    /// Serves on a listener the test bound (to reuse a port across restarts).
    pub fn on(listener: TcpListener, config: Config) -> TestServer {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::serve(listener, config, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            stop: Some(tx),
            handle: Some(handle),
        }
    }

    pub fn base(&self) -> String {
        format!("ws://{}", self.addr)
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn sync_url(&self, org: &str) -> String {
        format!("ws://{}/api/ws/sync/{org}", self.addr)
    }

    /// Stops the server and waits for `serve` to return.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(WAIT, self.handle.take().unwrap())
            .await
            .expect("server did not stop in time")
            .expect("server task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn connect(url: &str) -> Ws {
    let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("connect timed out")
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    ws
}

/// The next message that is not a ping/pong.
pub async fn next_message(ws: &mut Ws) -> Message {
    loop {
        let message = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("no message in time")
            .expect("stream ended")
            .expect("read failed");
        if !matches!(message, Message::Ping(_) | Message::Pong(_)) {
            return message;
        }
    }
}

/// The next text frame as JSON.
pub async fn next_json(ws: &mut Ws) -> Value {
    match next_message(ws).await {
        Message::Text(text) => serde_json::from_str(&text).expect("frame is JSON"),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// Reads until the server's close frame and returns it.
pub async fn next_close(ws: &mut Ws) -> CloseFrame {
    loop {
        match next_message(ws).await {
            Message::Close(Some(frame)) => return frame,
            Message::Close(None) => panic!("close without a code"),
            _ => {}
        }
    }
}

/// Connects to an organization and returns the socket and its CONNECTED.
pub async fn subscribe(server: &TestServer, org: &str) -> (Ws, Value) {
    let mut ws = connect(&server.sync_url(org)).await;
    let connected = next_json(&mut ws).await;
    assert_eq!(connected["type"], "CONNECTED");
    (ws, connected)
}

pub async fn send_text(ws: &mut Ws, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
}

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().timeout(WAIT).build().unwrap()
}

pub async fn post(url: &str, body: &str) -> (u16, Value) {
    let response = http_client()
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

pub async fn get(url: &str) -> (u16, String) {
    let response = http_client().get(url).send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

pub async fn get_json(url: &str) -> Value {
    let (status, body) = get(url).await;
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Publishes `count` events of `kind` to `org`.
pub async fn publish(
    server: &TestServer,
    org: &str,
    kind: &str,
    pfa: &str,
    details: Value,
    count: u64,
) -> Value {
    let body = serde_json::json!({
        "organizationId": org, "type": kind, "pfaId": pfa, "details": details, "count": count,
    });
    let (status, answer) = post(&server.http("/api/ws/publish"), &body.to_string()).await;
    assert_eq!(status, 200, "{answer}");
    answer
}

/// Runs the built binary with a sanitised environment and a deadline.
pub async fn run_cli(args: &[&str]) -> Output {
    run_cli_env(args, &[]).await
}

pub async fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command.args(args).env("NO_COLOR", "1").kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if key.starts_with("SYNCPROBE_") || key == "CLICOLOR_FORCE" {
            command.env_remove(key);
        }
    }
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("syncprobe did not finish in time")
        .unwrap()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Every stdout line as a JSON record; panics on a line that is not one.
pub fn records(output: &Output) -> Vec<Value> {
    stdout(output)
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not NDJSON: {line:?}: {e}"))
        })
        .collect()
}
