//! The `--json` format: NDJSON on stdout, one object per line, flushed per line,
//! nothing else on stdout.
//!
//! Every line is `{"type": "<record>", "data": {...}}`. Consumers must ignore record
//! types they do not know. The record types:
//!
//! | type | data |
//! |---|---|
//! | `listening` | `serve` is bound: `{"addr":"127.0.0.1:PORT","url":"ws://127.0.0.1:PORT"}` |
//! | `open` | a socket opened: [`Open`] |
//! | `event` | a frame the server sent, untouched (a frame that is not JSON: a JSON string) |
//! | `close` | a socket closed: [`Close`] |
//! | `step` | a `smoke` step: `name`, `status`, `ms`, `message`, `exitCode` |
//! | `progress` | periodic figures of long runs (`load`) |
//! | `summary` | the final figures and verdict of a run |
//! | `warning` | something worth knowing that does not end the run: `message` |
//! | `error` | the error that ended the run: `message`, `exitCode` |

use std::net::SocketAddr;

use serde::Serialize;

#[derive(Serialize)]
struct Envelope<'a, T: ?Sized> {
    #[serde(rename = "type")]
    kind: &'a str,
    data: &'a T,
}

/// One NDJSON line (with its newline) for a record.
pub fn line<T: Serialize + ?Sized>(kind: &str, data: &T) -> serde_json::Result<String> {
    let mut text = serde_json::to_string(&Envelope { kind, data })?;
    text.push('\n');
    Ok(text)
}

#[derive(Serialize)]
pub struct Listening<'a> {
    pub addr: SocketAddr,
    pub url: &'a str,
}

/// A socket opened.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Open {
    pub url: String,
    pub organization_id: String,
    /// From the first DNS query to the completed upgrade, in milliseconds.
    pub open_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocol: Option<String>,
    /// 0 for the first connection, then 1, 2, … for reconnections.
    pub attempt: u32,
}

/// A socket closed.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Close {
    /// The close code, when a close frame was exchanged.
    pub code: Option<u16>,
    pub reason: String,
    /// `client` or `server`.
    pub initiator: String,
}

#[derive(Serialize)]
pub struct Warning<'a> {
    pub message: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorRecord {
    pub message: String,
    pub exit_code: i32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_shape() {
        let text = line(
            "listening",
            &Listening {
                addr: "127.0.0.1:9".parse().unwrap(),
                url: "ws://127.0.0.1:9",
            },
        )
        .unwrap();
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["type"], "listening");
        assert_eq!(v["data"]["addr"], "127.0.0.1:9");
    }
}
