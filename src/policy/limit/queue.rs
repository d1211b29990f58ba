//! An account's pacing queue as admission sees it: how many requests wait,
//! and what they wait as, so that a newcomer which shares no waiting limit
//! with them need not queue behind them (FIFO holds among the requests a
//! limit actually holds).

use smallvec::SmallVec;

use super::policy::PolicyLimits;
use crate::policy::classify::ActionSet;

/// The requests of one account queued for pacing.
#[derive(Debug, Default)]
pub struct Queue {
    /// The actions of each queued request.
    queued: SmallVec<[ActionSet; 2]>,
}

impl Queue {
    /// A request joins the queue.
    pub fn enqueue(&mut self, actions: &ActionSet) {
        self.queued.push(actions.clone());
    }

    /// A request leaves it (admitted, refused or gone).
    pub fn dequeue(&mut self, actions: &ActionSet) {
        if let Some(at) = self.queued.iter().position(|queued| queued == actions) {
            self.queued.swap_remove(at);
        }
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Whether a request with `actions` shares a limit that waiting can
    /// satisfy (a rolling window, the gap, `concurrent_limit`) with a
    /// queued request: it then queues behind them, in arrival order.
    pub fn contends(&self, policy: &PolicyLimits, actions: &ActionSet) -> bool {
        if self.queued.is_empty() {
            return false;
        }
        if policy.concurrency.is_some() {
            return true;
        }
        let limited = |a: &ActionSet| !a.is_empty();
        if policy.gap.is_some() && limited(actions) && self.queued.iter().any(limited) {
            return true;
        }
        policy.rolling.iter().any(|rule| {
            rule.scope.applies(actions) && self.queued.iter().any(|q| rule.scope.applies(q))
        })
    }
}
