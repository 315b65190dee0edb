//! Stock third-party clients against `serve`: Python's `websockets` library.
//! `.ci/run` installs it; elsewhere the test says it is skipped unless `CI` is set.

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::*;

fn python_has_websockets() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import websockets"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_client_talks_to_serve() {
    if !python_has_websockets() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install python3 websockets"
        );
        eprintln!("skipped: python3 has no `websockets` (pip install websockets)");
        return;
    }
    let server = TestServer::start().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/python_client.py"
    );
    let mut child = tokio::process::Command::new("python3")
        .args([script, &server.base(), "org-py"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || -> Value {
        let line = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap();
        serde_json::from_str(&line.expect("the client ended early")).unwrap()
    };
    let connected = next().await;
    assert_eq!(connected["frame"]["type"], "CONNECTED");
    assert_eq!(connected["frame"]["organizationId"], "org-py");
    publish(&server, "org-py", "SYNC_QUEUED", "pfa-py", json!(null), 1).await;
    let event = next().await;
    assert_eq!(event["frame"]["pfaId"], "pfa-py");
    assert_eq!(next().await["check"], "ping");
    assert_eq!(next().await["bytes"], 256 * 4096);
    let missing = next().await;
    assert_eq!(
        (missing["code"].as_u64(), missing["reason"].as_str()),
        (Some(4000), Some("Missing organizationId"))
    );
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}
