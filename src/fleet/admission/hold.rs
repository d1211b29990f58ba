//! What the fleet keeps of one admitted request until it ends, and the
//! release script (`scripts/release.lua`) that ends it: departure stamps,
//! the end, give-back, a cancelled reservation, lease renewals.

use std::sync::Arc;

use redis::Value;
use tokio::task::JoinHandle;

use super::answer::Admitted;
use super::plan::Plan;
use super::LEASE_RENEW;
use crate::fleet::{Fleet, FleetError};
use crate::policy::limit::shared::SharedHold;
use crate::policy::limit::Release;

/// What the fleet keeps of one admitted request, until it ends.
#[derive(Debug)]
pub struct FleetHold {
    pub(super) fleet: Arc<Fleet>,
    pub(super) plan: Arc<Plan>,
    pub(super) member: String,
    pub(super) admitted: Admitted,
    /// Renews the concurrency lease while the request lives.
    pub(super) renew: Option<JoinHandle<()>>,
    /// What is left to tell the store when the hold goes without an end:
    /// `cancel` while it waits for its start, `end` once placed.
    pub(super) on_drop: Option<&'static str>,
}

impl FleetHold {
    pub fn new(
        fleet: Arc<Fleet>,
        plan: Arc<Plan>,
        member: String,
        admitted: Admitted,
        lease_us: i64,
    ) -> FleetHold {
        let renew = (plan.concurrency > 0).then(|| {
            let (fleet, plan, member) = (fleet.clone(), plan.clone(), member.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LEASE_RENEW).await;
                    let _ = release(&fleet, &plan, &member, &admitted, "renew", lease_us).await;
                }
            })
        });
        FleetHold {
            fleet,
            plan,
            member,
            admitted,
            renew,
            on_drop: Some("cancel"),
        }
    }

    /// The request starts now: from here on it ends, it is not cancelled.
    pub fn placed(&mut self) {
        self.on_drop = Some("end");
    }

    /// Gives every consumption back (the request will not start).
    pub fn cancel(&mut self) {
        self.on_drop = None;
        self.finish("cancel").detach();
    }

    /// Tells the store `what` (`end`, `give_back`, `cancel`) and stops
    /// renewing the lease.
    fn finish(&mut self, what: &'static str) -> Release {
        if let Some(renew) = self.renew.take() {
            renew.abort();
        }
        let (fleet, plan, member, admitted) = (
            self.fleet.clone(),
            self.plan.clone(),
            self.member.clone(),
            self.admitted,
        );
        Release::later(async move {
            if let Err(err) = release(&fleet, &plan, &member, &admitted, what, 0).await {
                tracing::debug!(%err, what, "fleet release not recorded (leases and reservations expire by themselves)");
            }
        })
    }
}

impl SharedHold for FleetHold {
    fn depart(&mut self) -> Release {
        let (fleet, plan, member, admitted) = (
            self.fleet.clone(),
            self.plan.clone(),
            self.member.clone(),
            self.admitted,
        );
        Release::later(async move {
            let _ = release(&fleet, &plan, &member, &admitted, "depart", 0).await;
        })
    }

    fn end(mut self: Box<Self>) -> Release {
        self.on_drop = None;
        self.finish("end")
    }

    fn give_back(mut self: Box<Self>) -> Release {
        self.on_drop = None;
        self.finish("give_back")
    }
}

impl Drop for FleetHold {
    fn drop(&mut self) {
        if let Some(what) = self.on_drop.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                self.finish(what).detach();
            }
        } else if let Some(renew) = self.renew.take() {
            renew.abort();
        }
    }
}

/// Runs `scripts/release.lua` for one grant.
async fn release(
    fleet: &Fleet,
    plan: &Plan,
    member: &str,
    admitted: &Admitted,
    what: &str,
    lease_us: i64,
) -> Result<(), FleetError> {
    let mut invocation = fleet.scripts.release.key(&plan.base);
    invocation
        .arg(what)
        .arg(member)
        .arg(lease_us)
        .arg(admitted.day)
        .arg(admitted.batch_seq)
        .arg(u8::from(admitted.filled))
        .arg(admitted.last_before)
        .arg(plan.windows.len());
    for (key, _, _) in &plan.windows {
        invocation.arg(key);
    }
    invocation.arg(u8::from(plan.gap_us > 0));
    for name in &plan.names {
        invocation.arg(&**name);
    }
    fleet.invoke::<Value>(invocation).await.map(|_| ())
}
