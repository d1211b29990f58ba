//! An account's pacing queue as admission sees it: how many requests wait,
//! how many of them are limited actions, and how many wait as each action,
//! so that a newcomer can tell in constant time (whatever the queue's
//! length) whether it shares a waiting limit with them (see
//! [`super::state::LimiterState::contends`]).

use smallvec::SmallVec;

use super::policy::Scope;
use crate::policy::classify::ActionSet;

/// The requests of one account queued for pacing, counted.
#[derive(Debug, Default)]
pub struct Queue {
    total: u64,
    limited: u64,
    /// Queued requests by action id.
    by_action: SmallVec<[u64; 8]>,
}

impl Queue {
    /// A request joins the queue.
    pub fn enqueue(&mut self, actions: &ActionSet) {
        self.total += 1;
        self.limited += u64::from(!actions.is_empty());
        for id in actions.iter() {
            let at = usize::from(id.0);
            if self.by_action.len() <= at {
                self.by_action.resize(at + 1, 0);
            }
            self.by_action[at] += 1;
        }
    }

    /// A request leaves it (admitted, refused or gone).
    pub fn dequeue(&mut self, actions: &ActionSet) {
        self.total = self.total.saturating_sub(1);
        self.limited = self.limited.saturating_sub(u64::from(!actions.is_empty()));
        for id in actions.iter() {
            if let Some(n) = self.by_action.get_mut(usize::from(id.0)) {
                *n = n.saturating_sub(1);
            }
        }
    }

    /// How many requests wait.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether no request waits.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many waiting requests are limited actions.
    pub fn limited(&self) -> u64 {
        self.limited
    }

    /// How many waiting requests a limit of `scope` counts.
    pub fn under(&self, scope: Scope) -> u64 {
        match scope {
            Scope::All => self.total,
            Scope::Action(id) => self.by_action.get(usize::from(id.0)).copied().unwrap_or(0),
        }
    }
}
