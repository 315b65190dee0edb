//! The `--json` format: NDJSON on stdout, one object per line, flushed per line,
//! nothing else on stdout.
//!
//! Every line is `{"type": "<record>", "data": {...}}`. Consumers must ignore record
//! types they do not know. The record types:
//!
//! | type | data |
//! |---|---|
//! | `listening` | `serve` is bound: `{"addr":"127.0.0.1:PORT","url":"ws://127.0.0.1:PORT"}` |
//! | `open` | a socket opened: `url`, `connectMs` (time to open), … |
//! | `event` | a frame the server sent, untouched (the exact JSON it sent) |
//! | `close` | a socket closed: `code`, `reason`, `initiator` |
//! | `progress` | periodic figures of long runs (`load`) |
//! | `summary` | the final figures and verdict of a run |
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
