//! How usage survives a crash without a disk write per request.
//!
//! The store holds, per account, a snapshot of its counters and a headroom
//! H. The journal guarantees that the account never gets more than H
//! admissions past its last durable snapshot: at H/2 it asks for a flush,
//! and at H a request waits for one. After a crash every counter comes
//! back as snapshot + H, so it may come back high but never low, and no
//! cap or batch can be exceeded across the two runs.
//!
//! H starts small and doubles (up to a ceiling) when an account reached
//! the wall, so a busy account rarely waits; a larger H takes effect only
//! once a snapshot recording it is durable. A clean shutdown seals the
//! journal (no more admissions) and records H = 0.

/// The headroom of a new or quiet account.
pub const BASE_HEADROOM: u64 = 8;
/// The largest headroom a busy account grows to.
pub const MAX_HEADROOM: u64 = 1 << 16;

/// One account's admissions against its durable snapshot.
#[derive(Debug)]
pub struct Journal {
    admitted: u64,
    durable_at: u64,
    headroom: u64,
    wanted: u64,
    hit_wall: bool,
    sealed: bool,
}

/// A snapshot being written: what it covers and the headroom it records.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    admitted: u64,
    /// The headroom recorded with the snapshot.
    pub headroom: u64,
}

impl Default for Journal {
    fn default() -> Self {
        Journal {
            admitted: 0,
            durable_at: 0,
            headroom: BASE_HEADROOM,
            wanted: BASE_HEADROOM,
            hit_wall: false,
            sealed: false,
        }
    }
}

impl Journal {
    /// Whether one more admission must wait for a durable snapshot.
    pub fn at_wall(&mut self) -> bool {
        let at_wall = self.sealed || self.admitted - self.durable_at >= self.headroom;
        self.hit_wall |= at_wall;
        at_wall
    }

    /// Counts an admission; true when a flush should be asked for now.
    pub fn record(&mut self) -> bool {
        self.admitted += 1;
        self.admitted - self.durable_at >= self.headroom.div_ceil(2)
    }

    /// How many events (admissions, pauses) were recorded so far.
    pub fn mark(&self) -> u64 {
        self.admitted
    }

    /// Whether everything up to `mark` is in a durable snapshot.
    pub fn is_durable(&self, mark: u64) -> bool {
        self.durable_at >= mark
    }

    /// Whether admissions happened since the durable snapshot.
    pub fn is_dirty(&self) -> bool {
        self.admitted > self.durable_at
    }

    /// Starts a snapshot of the counters as they are now.
    pub fn begin_snapshot(&mut self) -> Pending {
        if std::mem::take(&mut self.hit_wall) && !self.sealed {
            self.wanted = (self.wanted * 2).min(MAX_HEADROOM);
        }
        Pending {
            admitted: self.admitted,
            headroom: if self.sealed { 0 } else { self.wanted },
        }
    }

    /// The snapshot is durable.
    pub fn durable(&mut self, pending: Pending) {
        self.durable_at = self.durable_at.max(pending.admitted);
        self.headroom = pending.headroom;
    }

    /// No admission from now on (clean shutdown).
    pub fn seal(&mut self) {
        self.sealed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_more_than_the_durable_headroom_past_the_snapshot() {
        let mut journal = Journal::default();
        let mut admitted = 0;
        while !journal.at_wall() {
            journal.record();
            admitted += 1;
        }
        assert_eq!(admitted, BASE_HEADROOM);
        let pending = journal.begin_snapshot();
        assert_eq!(pending.headroom, BASE_HEADROOM * 2, "the wall doubles H");
        assert!(journal.at_wall(), "not durable yet");
        journal.durable(pending);
        let mut more = 0;
        while !journal.at_wall() {
            journal.record();
            more += 1;
        }
        assert_eq!(more, BASE_HEADROOM * 2);
    }

    #[test]
    fn a_sealed_journal_admits_nothing_and_records_no_headroom() {
        let mut journal = Journal::default();
        journal.record();
        journal.seal();
        assert!(journal.at_wall());
        assert_eq!(journal.begin_snapshot().headroom, 0);
    }
}
