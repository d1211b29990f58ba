//! One access line per request or tunnel, written from its context through
//! `tracing` (target `pacer::access`, level INFO) as one message that holds
//! every field. Nothing is formatted when that level is off.

use std::fmt;

use super::context::{RequestContext, CLIENT_CLOSED};

/// The upstream as the access line shows it: `host:port`, `direct`, or
/// `-` when no route was tried (refused or abandoned before routing).
pub fn upstream_label(ctx: &RequestContext) -> &str {
    match (&ctx.upstream, ctx.attempts) {
        (_, 0) => "-",
        (Some(upstream), _) => upstream,
        (None, _) => "direct",
    }
}

/// Writes the access line for a finished request or tunnel that matched
/// the actions named `actions`.
pub fn record(ctx: &RequestContext, actions: &[&str]) {
    tracing::info!(target: "pacer::access", "{}", Fields { ctx, actions });
}

/// The line's fields, `name=value` in the order of the README, formatted
/// as `tracing`'s fields would be (text quoted and escaped as `Debug`
/// does, the rest as `Display`) but in one pass: one message instead of
/// sixteen fields visited one by one.
struct Fields<'a> {
    ctx: &'a RequestContext,
    actions: &'a [&'a str],
}

impl fmt::Display for Fields<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ctx = self.ctx;
        write!(
            f,
            "id={} listener={:?} client={} account={:?} actions={} method={:?} host=",
            ctx.id,
            ctx.listener.as_str(),
            ctx.peer,
            ctx.account.as_deref().unwrap_or("-"),
            ActionList(self.actions),
            ctx.method.as_ref().map_or("-", |m| m.as_str()),
        )?;
        match &ctx.target {
            Some(target) => write!(f, "\"{}\"", Escaped(target))?,
            None => f.write_str("\"-\"")?,
        }
        write!(
            f,
            " status={} waited_ms={} upstream={:?} attempts={} bytes_up={} bytes_down={} \
             intercepted={} tunnel={} duration_ms={}",
            Status(ctx),
            ctx.waited.as_millis() as u64,
            upstream_label(ctx),
            ctx.attempts,
            ctx.bytes_up,
            ctx.bytes_down,
            ctx.intercepted.is_some(),
            Tunnel(ctx.intercepted),
            ctx.started.elapsed().as_millis() as u64,
        )
    }
}

/// A value's `Display` text escaped as `str`'s `Debug` escapes it, without
/// the quotes and without making a `String` of it first.
struct Escaped<'a, T>(&'a T);

impl<T: fmt::Display> fmt::Display for Escaped<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let mut escaping = Escaping(f);
        write!(escaping, "{}", self.0)
    }
}

/// Writes what it is given escaped as inside a `Debug`-quoted `str`.
struct Escaping<'a, 'b>(&'a mut fmt::Formatter<'b>);

impl fmt::Write for Escaping<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if !text.contains(|c: char| c == '"' || c == '\\' || c.is_control() || !c.is_ascii()) {
            return self.0.write_str(text);
        }
        let quoted = format!("{text:?}");
        self.0.write_str(&quoted[1..quoted.len() - 1])
    }
}

/// The status as the access line shows it: the HTTP status (or SOCKS5
/// reply), or `client_closed` for a request whose client left before it
/// was answered.
struct Status<'a>(&'a RequestContext);

impl fmt::Display for Status<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0.status, self.0.outcome) {
            (0, CLIENT_CLOSED) => f.write_str(CLIENT_CLOSED),
            (status, _) => status.fmt(f),
        }
    }
}

/// The id of an intercepted tunnel, `-` for none, formatted lazily.
struct Tunnel(Option<crate::wire::request_id::RequestId>);

impl fmt::Display for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => id.fmt(f),
            None => f.write_str("-"),
        }
    }
}

/// Action names joined by commas, `-` for none, formatted lazily.
struct ActionList<'a>(&'a [&'a str]);

impl std::fmt::Display for ActionList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::egress::target::Target;
    use crate::telemetry::context::ListenerKind;
    use crate::telemetry::testing::{served, snapshot};
    use crate::wire::request_id::RequestId;

    #[test]
    fn actions_are_listed_or_a_dash() {
        assert_eq!(ActionList(&[]).to_string(), "-");
        assert_eq!(ActionList(&["send", "all_x"]).to_string(), "send,all_x");
    }

    /// What a subscriber set up as pacer's (no colours) wrote.
    #[derive(Clone, Default)]
    struct Written(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Written {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// What `emit` logs, without the timestamp.
    fn logged(emit: impl FnOnce()) -> String {
        let written = Written::default();
        let writer = written.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .without_time()
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = written.0.lock().expect("lock").clone();
        String::from_utf8(bytes).expect("utf-8")
    }

    /// The line as `tracing`'s own fields write it: the format the README
    /// describes, which [`record`] must keep.
    fn fielded(ctx: &RequestContext, actions: &[&str]) {
        let host = ctx
            .target
            .as_ref()
            .map_or("-".to_owned(), |t| t.to_string());
        tracing::info!(
            target: "pacer::access",
            id = %ctx.id,
            listener = ctx.listener.as_str(),
            client = %ctx.peer,
            account = ctx.account.as_deref().unwrap_or("-"),
            actions = %ActionList(actions),
            method = ctx.method.as_ref().map_or("-", |m| m.as_str()),
            host,
            status = %Status(ctx),
            waited_ms = ctx.waited.as_millis() as u64,
            upstream = upstream_label(ctx),
            attempts = ctx.attempts,
            bytes_up = ctx.bytes_up,
            bytes_down = ctx.bytes_down,
            intercepted = ctx.intercepted.is_some(),
            tunnel = %Tunnel(ctx.intercepted),
            duration_ms = ctx.started.elapsed().as_millis() as u64,
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_line_is_the_one_tracing_fields_make() {
        let snapshot = snapshot();
        let mut through_upstream = served(&snapshot);
        through_upstream.upstream = Some(Arc::from("10.0.0.7:3128"));
        through_upstream.attempts = 2;
        through_upstream.bytes_up = 512;
        through_upstream.bytes_down = 1 << 20;
        through_upstream.waited = Duration::from_millis(1500);
        through_upstream.intercepted = Some(RequestId::next());
        let mut direct = served(&snapshot);
        direct.attempts = 1;
        direct.target = Some(Target::new("::1", 8080));
        let peer = "[::1]:50000".parse().expect("addr");
        let unknown = RequestContext::new(snapshot.clone(), ListenerKind::Socks5, peer);
        let mut odd_host = served(&snapshot);
        odd_host.target = Some(Target::new("b\u{fc}cher.example\"\\\u{7}", 80));
        odd_host.account = Some(Arc::from("a\"b"));
        let cases: [(&RequestContext, &[&str]); 4] = [
            (&through_upstream, &["send_message", "all"]),
            (&direct, &[]),
            (&unknown, &[]),
            (&odd_host, &["profiles"]),
        ];
        for (ctx, actions) in cases {
            tokio::time::advance(Duration::from_millis(1234)).await;
            let line = logged(|| record(ctx, actions));
            assert!(line.starts_with(" INFO pacer::access: id="), "{line}");
            assert_eq!(line, logged(|| fielded(ctx, actions)));
        }
    }
}
