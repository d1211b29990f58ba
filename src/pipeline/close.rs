//! The close-out: when a request or tunnel is over (answered, its body
//! streamed, its tunnel closed, refused, or abandoned by its client), its
//! access line is written, its metrics counted, its admission released
//! and its HTTP connection told. [`CloseOut`] does this when dropped, so
//! it happens exactly once on every path, early exits and cancellations
//! included.

use std::sync::Arc;

use super::activity::ConnActivity;
use super::Engine;
use crate::egress::replay::Uploaded;
use crate::policy::limit::Grant;
use crate::telemetry::access_log;
use crate::telemetry::context::RequestContext;
use crate::wire::body::BodyEnd;
use crate::wire::error::ProxyError;

/// One request or tunnel in progress, closed out when dropped.
pub struct CloseOut {
    engine: Arc<Engine>,
    /// What is known about the request.
    pub ctx: RequestContext,
    grant: Option<Grant>,
    connection: Option<Connection>,
    /// The request's body as sent, counted into `bytes_up` at the end.
    uploaded: Option<Uploaded>,
}

/// The HTTP connection a request runs on, told when it ends.
struct Connection {
    activity: Arc<ConnActivity>,
    streamed: bool,
}

impl CloseOut {
    /// Starts the close-out of `ctx`.
    pub fn new(engine: Arc<Engine>, ctx: RequestContext) -> Self {
        CloseOut {
            engine,
            ctx,
            grant: None,
            connection: None,
            uploaded: None,
        }
    }

    /// The request runs on an HTTP connection with this activity: it is in
    /// flight there until the close-out.
    pub fn on_connection(&mut self, activity: Arc<ConnActivity>) {
        activity.request_started();
        self.connection = Some(Connection {
            activity,
            streamed: false,
        });
    }

    /// The response head goes out now; its body streams until the end.
    pub fn streaming(&mut self) {
        if let Some(connection) = &mut self.connection {
            connection.activity.response_started();
            connection.streamed = true;
        }
    }

    /// The request's body is sent as `uploaded` counts it.
    pub fn uploading(&mut self, uploaded: Uploaded) {
        self.uploaded = Some(uploaded);
    }

    /// Holds the request's admission until the close-out.
    pub fn hold(&mut self, grant: Grant) {
        self.ctx.waited = grant.waited();
        self.ctx.held_by = grant.held_by();
        self.grant = Some(grant);
    }

    /// The request left pacer at `at` (its head written, its tunnel open):
    /// its grant counts it from then, and a paced request's lateness is
    /// noted.
    pub fn departed(&mut self, at: tokio::time::Instant) {
        let Some(grant) = &mut self.grant else {
            return;
        };
        let departed = grant.depart(self.engine.clock.at(at));
        departed.release.detach();
        if let Some(lateness) = departed.lateness {
            self.ctx.lateness = Some(lateness);
        }
    }

    /// The request failed with `err` before it was answered otherwise; a
    /// request that never reached the origin gives its consumption back.
    pub fn failed(&mut self, err: &ProxyError, status: u16) {
        self.ctx.failed(err, status);
        if err.never_reached_origin() {
            self.give_back();
        }
    }

    /// The client left before the request reached its destination: its
    /// daily-cap and batch consumption are given back.
    pub fn give_back(&mut self) {
        if let Some(grant) = self.grant.take() {
            grant.give_back().detach();
        }
    }

    /// The engine serving the request.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }
}

impl BodyEnd for CloseOut {
    fn sent(&mut self, bytes: usize) {
        self.ctx.bytes_down += bytes as u64;
    }
}

impl Drop for CloseOut {
    fn drop(&mut self) {
        if let Some(grant) = self.grant.take() {
            grant.release().detach();
        }
        if let Some(connection) = &self.connection {
            connection.activity.request_finished(connection.streamed);
        }
        if let Some(uploaded) = &self.uploaded {
            self.ctx.bytes_up += uploaded.bytes();
        }
        let names = self.ctx.action_names();
        access_log::record(&self.ctx, &names);
        let now = self.engine.clock.unix_ms();
        self.engine.metrics.observe(&self.ctx, &names, now);
    }
}
