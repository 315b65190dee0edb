//! A stream whose reads are shown to a [`Tap`] before the caller gets them: the
//! client keeps the first bytes of an upgrade answer (`client::recorded`), the
//! server meters client frames (`server::meter`). Writes pass through untouched.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What sees the bytes read; an error ends the read with it.
pub trait Tap {
    fn read(&mut self, bytes: &[u8]) -> io::Result<()>;
}

/// `inner` with `tap` on its reads.
pub struct Tapped<S, T> {
    inner: S,
    tap: T,
}

impl<S, T> Tapped<S, T> {
    pub fn new(inner: S, tap: T) -> Tapped<S, T> {
        Tapped { inner, tap }
    }

    pub fn tap_mut(&mut self) -> &mut T {
        &mut self.tap
    }

    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin, T: Tap + Unpin> AsyncRead for Tapped<S, T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = polled
            && let Err(e) = this.tap.read(&buf.filled()[before..])
        {
            return Poll::Ready(Err(e));
        }
        polled
    }
}

/// `impl AsyncWrite` for a read-side wrapper `$ty` whose writes all go to its field
/// `inner` untouched (here, and in `client::aligned`).
macro_rules! write_through {
    (impl<$($param:ident),*> for $ty:ty where $($bound:tt)*) => {
        impl<$($param),*> tokio::io::AsyncWrite for $ty
        where
            $($bound)*
        {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.inner.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_through;

write_through!(impl<S, T> for Tapped<S, T> where S: AsyncWrite + Unpin, T: Unpin);
