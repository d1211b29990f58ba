//! The `AsyncWrite` methods a stream wrapper passes straight to the stream
//! it wraps, written once ([`pass_writes!`]) for every wrapper that only
//! watches or replays reads ([`super::prefix::Prefixed`],
//! [`super::reuse::Watched`], and the pipeline's client-side wrappers).

/// Inside `impl AsyncWrite for Wrapper<S>`: the named methods
/// (`poll_write`, `poll_write_vectored`, `is_write_vectored`, `poll_flush`,
/// `poll_shutdown`), each passing its call to the field `$inner` (an
/// `Unpin` stream, the wrapper `Unpin` too).
macro_rules! pass_writes {
    ($inner:ident: $($method:ident),+ $(,)?) => {
        $( $crate::egress::pass::pass_writes!(@$method $inner); )+
    };
    (@poll_write $inner:ident) => {
        fn poll_write(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
            buf: &[u8],
        ) -> ::std::task::Poll<::std::io::Result<usize>> {
            ::std::pin::Pin::new(&mut self.get_mut().$inner).poll_write(cx, buf)
        }
    };
    (@poll_write_vectored $inner:ident) => {
        fn poll_write_vectored(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
            bufs: &[::std::io::IoSlice<'_>],
        ) -> ::std::task::Poll<::std::io::Result<usize>> {
            ::std::pin::Pin::new(&mut self.get_mut().$inner).poll_write_vectored(cx, bufs)
        }
    };
    (@is_write_vectored $inner:ident) => {
        fn is_write_vectored(&self) -> bool {
            self.$inner.is_write_vectored()
        }
    };
    (@poll_flush $inner:ident) => {
        fn poll_flush(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.get_mut().$inner).poll_flush(cx)
        }
    };
    (@poll_shutdown $inner:ident) => {
        fn poll_shutdown(
            self: ::std::pin::Pin<&mut Self>,
            cx: &mut ::std::task::Context<'_>,
        ) -> ::std::task::Poll<::std::io::Result<()>> {
            ::std::pin::Pin::new(&mut self.get_mut().$inner).poll_shutdown(cx)
        }
    };
}

pub(crate) use pass_writes;
