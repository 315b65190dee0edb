//! The rules of one open sync socket ([`SessionGuard`]): the rate of client frames
//! (4429), the message size (1009), the idle timeout (4408), the token's expiry
//! (4401) and the organization's place on the allow-list (4403). The socket handler
//! hands it every client frame and read error, and polls [`SessionGuard::poll_closing`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite;
use tokio_util::sync::ReusableBoxFuture;

use super::orgs::AllowedOrgs;
use crate::claims::Grant;
use crate::protocol::{
    CLOSE_CAPACITY, CLOSE_IDLE_TIMEOUT, CLOSE_MESSAGE_TOO_BIG, CLOSE_ORG_NOT_ALLOWED,
    CLOSE_RATE_LIMITED, CLOSE_TOKEN_EXPIRED,
};

/// Client frames per second per connection.
pub const DEFAULT_RATE: u32 = 100;
/// Client frames a connection may send at once before the rate applies.
pub const DEFAULT_BURST: u32 = 200;
/// Largest client message on a sync socket.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 10 * 1024;
/// Time without client frames or pongs after which a sync socket is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Frames are read whole up to this many times the message limit (at least
/// [`MIN_FRAME_LIMIT`]), so that a message slightly too big is consumed and the close
/// handshake stays in step; a larger frame is refused from its header, unread.
const FRAME_LIMIT_FACTOR: usize = 2;
const MIN_FRAME_LIMIT: usize = 64 * 1024;
/// Longest close reason: a close frame's payload is at most 125 bytes, 2 of them the code.
const MAX_CLOSE_REASON: usize = 123;

/// The frame size limit that goes with a message size limit: twice it, at least 64 KiB.
pub fn frame_limit(max_message_size: usize) -> usize {
    max_message_size
        .saturating_mul(FRAME_LIMIT_FACTOR)
        .max(MIN_FRAME_LIMIT)
}

/// Why the security rules end a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closing {
    RateLimited,
    /// A client message over the limit. `unread` when the frame was refused from its
    /// header: the rest of it is still on the wire, so nothing more may be read.
    TooBig {
        size: usize,
        max: usize,
        unread: bool,
    },
    Idle(Duration),
    TokenExpired,
    OrgRevoked,
    Capacity(String),
}

impl Closing {
    pub fn code(&self) -> u16 {
        match self {
            Closing::RateLimited => CLOSE_RATE_LIMITED,
            Closing::TooBig { .. } => CLOSE_MESSAGE_TOO_BIG,
            Closing::Idle(_) => CLOSE_IDLE_TIMEOUT,
            Closing::TokenExpired => CLOSE_TOKEN_EXPIRED,
            Closing::OrgRevoked => CLOSE_ORG_NOT_ALLOWED,
            Closing::Capacity(_) => CLOSE_CAPACITY,
        }
    }

    /// The close reason (short: a close frame holds at most 123 bytes of it).
    pub fn reason(&self) -> String {
        let reason = match self {
            Closing::RateLimited => "rate limit exceeded".to_string(),
            Closing::TooBig { size, max, .. } => {
                format!("message too big: {size} bytes, limit {max}")
            }
            Closing::Idle(after) => format!(
                "idle timeout: nothing received for {}",
                humantime::format_duration(*after)
            ),
            Closing::TokenExpired => "token expired".to_string(),
            Closing::OrgRevoked => "organization no longer allowed".to_string(),
            Closing::Capacity(message) => message.clone(),
        };
        let mut end = reason.len().min(MAX_CLOSE_REASON);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason[..end].to_string()
    }

    /// The disconnect metric's reason.
    pub fn label(&self) -> &'static str {
        match self {
            Closing::RateLimited => "rate_limited",
            Closing::TooBig { .. } => "message_too_big",
            Closing::Idle(_) => "idle_timeout",
            Closing::TokenExpired => "token_expired",
            Closing::OrgRevoked => "org_revoked",
            Closing::Capacity(_) => "connection_cap",
        }
    }

    /// Whether the close handshake may read from the socket.
    pub fn may_read(&self) -> bool {
        !matches!(self, Closing::TooBig { unread: true, .. })
    }
}

/// What a client sent, as far as the rules care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Text or binary: counted against the rate.
    Data,
    /// Counted against the rate too: pings cost the server a pong.
    Ping,
    /// An answer to the server's ping, or an unsolicited one: counted too, since a
    /// flood of them costs the server as much as any other frame.
    Pong,
    Close,
}

impl ClientFrame {
    pub fn of(message: &tungstenite::Message) -> ClientFrame {
        use tungstenite::Message;
        match message {
            Message::Text(_) | Message::Binary(_) | Message::Frame(_) => ClientFrame::Data,
            Message::Ping(_) => ClientFrame::Ping,
            Message::Pong(_) => ClientFrame::Pong,
            Message::Close(_) => ClientFrame::Close,
        }
    }
}

/// A read error that the rules turn into a close (an oversized message: 1009).
pub fn read_error(
    error: &(dyn std::error::Error + 'static),
    max_message_size: usize,
) -> Option<Closing> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(
            tungstenite::error::CapacityError::MessageTooLong { size, max_size },
        )) = e.downcast_ref::<tungstenite::Error>()
        {
            return Some(Closing::TooBig {
                size: *size,
                max: max_message_size,
                unread: *max_size != max_message_size,
            });
        }
        source = e.source();
    }
    None
}

/// The per-session settings, shared by every session of a server.
pub struct SessionRules {
    pub client_rate: Option<Quota>,
    pub idle_timeout: Duration,
    pub max_message_size: usize,
    /// One clock for every connection's limiter: creating a clock calibrates it
    /// (CPUID probing), which cost a tenth of the server's time at 10,000 connects.
    pub clock: governor::clock::DefaultClock,
}

/// The rules of one sync socket: the client-frame rate, the idle timeout, the
/// token's expiry and the organization's place on the allow-list.
pub struct SessionGuard {
    org: String,
    limiter: Option<DefaultDirectRateLimiter>,
    idle: Duration,
    last_activity: Instant,
    expires: Option<Instant>,
    /// Armed for the earliest of the idle deadline and the expiry; moved lazily
    /// when it fires early because of activity since.
    timer: Option<Pin<Box<Sleep>>>,
    /// The allow-list's next change, when there is a list.
    allowed: Option<Change>,
    max_message_size: usize,
}

impl SessionGuard {
    /// `allowed` follows the allow-list, when there is one.
    pub fn new(
        rules: &SessionRules,
        org: &str,
        grant: Option<&Grant>,
        allowed: Option<watch::Receiver<AllowedOrgs>>,
    ) -> SessionGuard {
        let now = Instant::now();
        let expires = grant.map(|g| {
            now + g
                .expires_at
                .duration_since(SystemTime::now())
                .unwrap_or_default()
        });
        let mut guard = SessionGuard {
            org: org.to_string(),
            limiter: rules
                .client_rate
                .map(|quota| RateLimiter::direct_with_clock(quota, rules.clock.clone())),
            idle: rules.idle_timeout,
            last_activity: now,
            expires,
            timer: None,
            allowed: allowed.map(|rx| ReusableBoxFuture::new(next_change(rx))),
            max_message_size: rules.max_message_size,
        };
        guard.timer = guard
            .deadline()
            .map(|at| Box::pin(tokio::time::sleep_until(at)));
        guard
    }

    fn deadline(&self) -> Option<Instant> {
        let idle = (!self.idle.is_zero()).then(|| self.last_activity + self.idle);
        match (idle, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// A frame arrived: the client is active; data, pings and pongs count against
    /// the rate.
    pub fn client_frame(&mut self, frame: ClientFrame) -> Result<(), Closing> {
        self.last_activity = Instant::now();
        if matches!(
            frame,
            ClientFrame::Data | ClientFrame::Ping | ClientFrame::Pong
        ) && let Some(limiter) = &self.limiter
            && limiter.check().is_err()
        {
            return Err(Closing::RateLimited);
        }
        Ok(())
    }

    /// A read failed: the close it calls for, if any.
    pub fn read_error(&self, error: &(dyn std::error::Error + 'static)) -> Option<Closing> {
        read_error(error, self.max_message_size)
    }

    /// Ready when a rule ends the session. A poll function rather than a future, so
    /// that the session loop holds no future for it: the timer is polled in place, and
    /// the allow-list's watch (the only part that needs a future) is boxed once, only
    /// on servers with an allow-list.
    pub fn poll_closing(&mut self, cx: &mut Context<'_>) -> Poll<Closing> {
        // A fire re-arms the timer for a later deadline (activity moved it), which is
        // polled once more so that it registers; the deadline only ever moves later.
        while let Some(timer) = self.timer.as_mut() {
            if timer.as_mut().poll(cx).is_pending() {
                break;
            }
            if let Some(closing) = self.timer_fired() {
                return Poll::Ready(closing);
            }
        }
        while let Some(allowed) = self.allowed.as_mut() {
            let Poll::Ready((changed, rx)) = allowed.poll(cx) else {
                break;
            };
            if changed.is_err() {
                // The list can no longer change.
                self.allowed = None;
                break;
            }
            if !rx.borrow().contains(&self.org) {
                return Poll::Ready(Closing::OrgRevoked);
            }
            allowed.set(next_change(rx));
        }
        Poll::Pending
    }

    /// The timer fired: the token expired, the session idled out, or activity since
    /// moved the deadline (the timer is re-armed for it).
    fn timer_fired(&mut self) -> Option<Closing> {
        let now = Instant::now();
        if self.expires.is_some_and(|at| at <= now) {
            return Some(Closing::TokenExpired);
        }
        if !self.idle.is_zero() && self.last_activity + self.idle <= now {
            return Some(Closing::Idle(self.idle));
        }
        let next = self.deadline();
        match (self.timer.as_mut(), next) {
            (Some(timer), Some(at)) => timer.as_mut().reset(at),
            _ => self.timer = None,
        }
        None
    }
}

/// The allow-list's next change, and the receiver to watch the one after.
type Change = ReusableBoxFuture<'static, (Result<(), watch::error::RecvError>, Allowed)>;
type Allowed = watch::Receiver<AllowedOrgs>;

async fn next_change(mut rx: Allowed) -> (Result<(), watch::error::RecvError>, Allowed) {
    let changed = rx.changed().await;
    rx.borrow_and_update();
    (changed, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reasons_fit_a_close_frame() {
        let long = Closing::Capacity("é".repeat(100));
        assert!(long.reason().len() <= 123);
        assert_eq!(Closing::TokenExpired.code(), 4401);
        assert_eq!(
            Closing::Idle(Duration::from_millis(200)).reason(),
            "idle timeout: nothing received for 200ms"
        );
    }
}
