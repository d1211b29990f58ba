//! How usage survives a crash without a disk write per request.
//!
//! The store holds, per account, a snapshot of its counters and a headroom
//! H: how many admissions may have happened after that snapshot. After a
//! crash every counter comes back as snapshot + H, so it may come back high
//! but never low, and no cap or batch can be exceeded across the two runs.
//!
//! Headroom is a lease, granted only while the account is admitting: a
//! snapshot taken when the account admitted something since the last
//! durable one (or has a request waiting) records H; one taken when it
//! admitted nothing records 0, so an account that went quiet comes back
//! exact. The journal keeps the account within the durable lease: at H/2
//! past the durable snapshot it asks for a flush, at H (or with no lease
//! at all) a request waits for one; while a snapshot that shrinks the lease
//! is being written, nothing is admitted.
//!
//! H starts small and doubles (up to a ceiling) when an account used up a
//! lease, so a busy account rarely waits; a lease takes effect only once a
//! snapshot recording it is durable. A clean shutdown seals the journal (no
//! more admissions) and records H = 0.

/// The headroom of a new or quiet account.
pub const BASE_HEADROOM: u64 = 8;
/// The largest headroom a busy account grows to.
pub const MAX_HEADROOM: u64 = 1 << 16;

/// One account's admissions against its durable snapshot.
#[derive(Debug)]
pub struct Journal {
    admitted: u64,
    durable_at: u64,
    /// The headroom of the durable snapshot: admissions allowed past it.
    granted: u64,
    /// The lease the next leasing snapshot records.
    wanted: u64,
    /// A request met the wall since the last snapshot began.
    hit_wall: bool,
    /// A snapshot recording less than `granted` is being written.
    shrinking: bool,
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
            granted: 0,
            wanted: BASE_HEADROOM,
            hit_wall: false,
            shrinking: false,
            sealed: false,
        }
    }
}

impl Journal {
    /// Whether one more admission must wait for a durable snapshot.
    pub fn at_wall(&mut self) -> bool {
        let at_wall =
            self.sealed || self.shrinking || self.admitted - self.durable_at >= self.granted;
        self.hit_wall |= at_wall;
        at_wall
    }

    /// Counts an admission; true when a flush should be asked for now.
    pub fn record(&mut self) -> bool {
        self.admitted += 1;
        self.admitted - self.durable_at >= self.granted.div_ceil(2)
    }

    /// How many events (admissions, pauses) were recorded so far.
    pub fn mark(&self) -> u64 {
        self.admitted
    }

    /// Whether everything up to `mark` is in a durable snapshot.
    pub fn is_durable(&self, mark: u64) -> bool {
        self.durable_at >= mark
    }

    /// Whether a snapshot is due: admissions since the durable one, a
    /// request waiting for a lease, or a lease to give up.
    pub fn is_dirty(&self) -> bool {
        self.admitted > self.durable_at || self.hit_wall || (self.granted > 0 && !self.shrinking)
    }

    /// Starts a snapshot of the counters as they are now.
    pub fn begin_snapshot(&mut self) -> Pending {
        let active = self.admitted > self.durable_at || self.hit_wall;
        let used_up = self.granted > 0 && self.admitted - self.durable_at >= self.granted;
        if std::mem::take(&mut self.hit_wall) && used_up {
            self.wanted = (self.wanted * 2).min(MAX_HEADROOM);
        }
        let headroom = if self.sealed || !active {
            0
        } else {
            self.wanted
        };
        self.shrinking = headroom < self.granted;
        Pending {
            admitted: self.admitted,
            headroom,
        }
    }

    /// The snapshot is durable.
    pub fn durable(&mut self, pending: Pending) {
        self.durable_at = self.durable_at.max(pending.admitted);
        self.granted = pending.headroom;
        self.shrinking = false;
    }

    /// No admission from now on (clean shutdown).
    pub fn seal(&mut self) {
        self.sealed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Admits until the wall; how many went through.
    fn admit_all(journal: &mut Journal) -> u64 {
        let mut admitted = 0;
        while !journal.at_wall() {
            journal.record();
            admitted += 1;
        }
        admitted
    }

    fn persist(journal: &mut Journal) -> u64 {
        let pending = journal.begin_snapshot();
        journal.durable(pending);
        pending.headroom
    }

    #[test]
    fn never_more_than_the_durable_headroom_past_the_snapshot() {
        let mut journal = Journal::default();
        assert_eq!(admit_all(&mut journal), 0, "no lease yet");
        assert_eq!(
            persist(&mut journal),
            BASE_HEADROOM,
            "a waiting request leases"
        );
        assert_eq!(admit_all(&mut journal), BASE_HEADROOM);
        let pending = journal.begin_snapshot();
        assert_eq!(
            pending.headroom,
            BASE_HEADROOM * 2,
            "a used-up lease doubles"
        );
        assert!(journal.at_wall(), "not durable yet");
        journal.durable(pending);
        assert_eq!(admit_all(&mut journal), BASE_HEADROOM * 2);
    }

    #[test]
    fn a_quiet_account_gives_its_lease_up_and_comes_back_exact() {
        let mut journal = Journal::default();
        assert!(!journal.is_dirty(), "nothing to write for an idle account");
        assert_eq!(persist(&mut journal), 0);
        journal.at_wall();
        persist(&mut journal);
        journal.record();
        assert_eq!(persist(&mut journal), BASE_HEADROOM, "still admitting");
        assert!(journal.is_dirty(), "a lease to give up");
        let pending = journal.begin_snapshot();
        assert_eq!(pending.headroom, 0, "nothing admitted since: exact");
        journal.durable(pending);
        assert!(!journal.is_dirty(), "nothing more to write");
        assert!(journal.at_wall(), "the next admission waits for a lease");
        assert!(journal.is_dirty(), "which it asks for");
        assert_eq!(
            persist(&mut journal),
            BASE_HEADROOM,
            "not doubled: never used up"
        );
    }

    #[test]
    fn nothing_is_admitted_while_a_lease_shrinks() {
        let mut journal = Journal::default();
        journal.at_wall();
        persist(&mut journal);
        let pending = journal.begin_snapshot();
        assert_eq!(pending.headroom, 0);
        assert!(
            journal.at_wall(),
            "the shrinking snapshot is not durable yet"
        );
        journal.durable(pending);
        assert_eq!(
            persist(&mut journal),
            BASE_HEADROOM,
            "the waiting request leases"
        );
        assert!(!journal.at_wall());
    }

    #[test]
    fn a_sealed_journal_admits_nothing_and_records_no_headroom() {
        let mut journal = Journal::default();
        journal.at_wall();
        persist(&mut journal);
        journal.record();
        journal.seal();
        assert!(journal.at_wall());
        assert_eq!(journal.begin_snapshot().headroom, 0);
    }
}
