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

pub fn http_client() -> reqwest::Client {
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

/// Variables of the test's own environment that would change what the binary does:
/// syncprobe's own, forced colour, and proxies (sockets and REST honour them).
pub fn inherited_setting(key: &str) -> bool {
    let proxy = ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"]
        .iter()
        .any(|name| key.eq_ignore_ascii_case(name));
    key.starts_with("SYNCPROBE_") || key == "CLICOLOR_FORCE" || proxy
}

pub async fn run_cli_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command.args(args).env("NO_COLOR", "1").kill_on_drop(true);
    for (key, _) in std::env::vars() {
        if inherited_setting(&key) {
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

/// A syncprobe run the test acts on while it runs (publishing after CONNECTED,
/// interrupting it): its stdout is read record by record (run it with `--json`),
/// its stderr collected in the background.
pub struct Running {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Every record read so far, in order.
    pub records: Vec<Value>,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
    stderr_task: JoinHandle<()>,
}

/// How a [`Running`] ended.
#[derive(Debug)]
pub struct Finished {
    pub status: std::process::ExitStatus,
    /// Every stdout record of the run.
    pub records: Vec<Value>,
    pub stderr: String,
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Starts the built binary with the same sanitised environment as [`run_cli`].
pub fn spawn_cli(args: &[&str]) -> Running {
    use std::process::Stdio;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_syncprobe"));
    command
        .args(args)
        .env("NO_COLOR", "1")
        .kill_on_drop(true)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if inherited_setting(&key) {
            command.env_remove(key);
        }
    }
    let mut child = command.spawn().expect("failed to start syncprobe");
    let stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let stderr_task = {
        let stderr = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                stderr
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    Running {
        child,
        lines: tokio::io::BufReader::new(stdout).lines(),
        records: Vec::new(),
        stderr,
        stderr_task,
    }
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id().expect("syncprobe already exited")
    }

    /// Stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Reads records until one satisfies `wanted` and returns it (every record read
    /// is kept in `records`). Panics when stdout ends or nothing comes within [`WAIT`].
    pub async fn wait_for(&mut self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = match tokio::time::timeout_at(deadline, self.lines.next_line()).await {
                Err(_) => panic!(
                    "no {what} within {WAIT:?}; records: {:?}; stderr: {}",
                    self.records,
                    self.stderr()
                ),
                Ok(line) => line.expect("reading syncprobe's stdout failed"),
            };
            let Some(line) = line else {
                // Let the stderr reader catch up: the process has ended.
                let _ = tokio::time::timeout(WAIT, self.child.wait()).await;
                panic!(
                    "stdout ended before {what}; records: {:?}; stderr: {}",
                    self.records,
                    self.stderr()
                );
            };
            let record: Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not NDJSON: {line:?}: {e}"));
            self.records.push(record.clone());
            if wanted(&record) {
                return record;
            }
        }
    }

    /// Waits for the next `event` record carrying `CONNECTED`.
    pub async fn wait_for_connected(&mut self) -> Value {
        self.wait_for("CONNECTED", is_connected_record).await
    }

    /// Sends SIGINT, as Ctrl-C does.
    pub async fn interrupt(&self) {
        let status = tokio::process::Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status()
            .await
            .expect("failed to run kill");
        assert!(status.success(), "kill -INT failed: {status}");
    }

    /// Reads the rest of stdout and waits for the exit (bounded).
    pub async fn finish(mut self) -> Finished {
        let rest = async {
            while let Some(line) = self.lines.next_line().await.expect("reading stdout") {
                let record: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not NDJSON: {line:?}: {e}"));
                self.records.push(record);
            }
            let status = self.child.wait().await.expect("waiting for syncprobe");
            let _ = (&mut self.stderr_task).await;
            status
        };
        let status = tokio::time::timeout(Duration::from_secs(60), rest)
            .await
            .expect("syncprobe did not finish in time");
        let stderr = self.stderr();
        Finished {
            status,
            records: self.records,
            stderr,
        }
    }
}

/// An `event` record whose frame is `CONNECTED`.
pub fn is_connected_record(record: &Value) -> bool {
    record["type"] == "event" && record["data"]["type"] == "CONNECTED"
}

/// The `data` of every record of type `kind`, in order.
pub fn data_of<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records
        .iter()
        .filter(|r| r["type"] == kind)
        .map(|r| &r["data"])
        .collect()
}

/// Deserialises a record's `data` into its type.
/// The `seq` of every event a `watch-sync --json` run printed, CONNECTED left out.
pub fn event_seqs(records: &[Value]) -> Vec<u64> {
    data_of(records, "event")
        .iter()
        .filter(|e| e["type"] != "CONNECTED")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

pub fn typed<T: serde::de::DeserializeOwned>(data: &Value) -> T {
    serde_json::from_value(data.clone())
        .unwrap_or_else(|e| panic!("{data} is not a {}: {e}", std::any::type_name::<T>()))
}

/// The one `summary` record of a run, typed.
pub fn summary_of<T: serde::de::DeserializeOwned>(records: &[Value]) -> T {
    let summaries = data_of(records, "summary");
    assert_eq!(summaries.len(), 1, "one summary record: {records:?}");
    typed(summaries[0])
}
