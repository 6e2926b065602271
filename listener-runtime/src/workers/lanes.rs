//! Which queued call may run next: calls for the same object (any shared lane, see
//! [`super::job::lanes`]) never overlap and run in queue order; calls for different objects run
//! side by side.

use std::collections::{BTreeMap, HashSet};
use std::time::SystemTime;

use super::job::{self, Job};
use crate::listener::call::Invocation;

/// How far past blocked rows the scheduler looks for one it may run.
const LOOK_AHEAD: usize = 4096;

/// One row of a module's queue.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Its sequence number in the cache's queue.
    pub seq: u64,
    /// The call, encoded ([`Job::encode`]) as the queue holds it and a worker gets it;
    /// decoded again only when it fails (a row is kept small: a queue may hold many).
    pub bytes: Vec<u8>,
    /// [`super::job::lanes`], computed once.
    pub lanes: Vec<u64>,
    /// When the listener queued it (for the oldest row's age).
    pub queued: SystemTime,
    /// How often a worker died while running it.
    pub crashes: u32,
}

impl Row {
    /// The row `seq` of `job`, encoded as `bytes`.
    pub(crate) fn new(seq: u64, job: &Job, bytes: Vec<u8>) -> Row {
        NewRow {
            lanes: job.lanes(),
            bytes,
            queued: SystemTime::now(),
        }
        .stored(seq)
    }
}

/// A call queued in a transaction whose commit has not yet stored it: it gets its
/// sequence number when it is written.
#[derive(Debug, Clone)]
pub(crate) struct NewRow {
    /// As [`Row::bytes`].
    pub bytes: Vec<u8>,
    /// As [`Row::lanes`].
    pub lanes: Vec<u64>,
    /// As [`Row::queued`].
    pub queued: SystemTime,
}

impl NewRow {
    /// The row of `invocation` in transaction `id`; `None` for a classic call.
    pub(crate) fn of(id: u64, invocation: &Invocation<'_>) -> Option<NewRow> {
        Some(NewRow {
            bytes: job::encode(id, invocation)?,
            lanes: job::lanes(invocation),
            queued: SystemTime::now(),
        })
    }

    /// The row as stored under `seq`.
    pub(crate) fn stored(self, seq: u64) -> Row {
        Row {
            seq,
            bytes: self.bytes,
            lanes: self.lanes,
            queued: self.queued,
            crashes: 0,
        }
    }
}

/// The rows of one module: waiting, and handed to a worker.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    waiting: BTreeMap<u64, Row>,
    running: BTreeMap<u64, Row>,
}

impl Lanes {
    /// Queues `row` (rows come in sequence order; a row given back keeps its place).
    pub(crate) fn push(&mut self, row: Row) {
        self.waiting.insert(row.seq, row);
    }

    /// The first waiting row that shares no lane with a running row or with a waiting row
    /// before it, now counted as running.
    pub(crate) fn take_ready(&mut self) -> Option<&Row> {
        let mut blocked: HashSet<u64> = self
            .running
            .values()
            .flat_map(|r| r.lanes.iter().copied())
            .collect();
        let mut ready = None;
        for row in self.waiting.values().take(LOOK_AHEAD) {
            if row.lanes.iter().all(|l| !blocked.contains(l)) {
                ready = Some(row.seq);
                break;
            }
            blocked.extend(row.lanes.iter().copied());
        }
        let row = self.waiting.remove(&ready?)?;
        let seq = row.seq;
        self.running.insert(seq, row);
        self.running.get(&seq)
    }

    /// The running row `seq` is over (done or failed for good).
    pub(crate) fn finish(&mut self, seq: u64) -> Option<Row> {
        self.running.remove(&seq)
    }

    /// The running row `seq` goes back to waiting, in its place (its worker died).
    pub(crate) fn give_back(&mut self, seq: u64) -> Option<&Row> {
        let mut row = self.running.remove(&seq)?;
        row.crashes += 1;
        self.waiting.insert(seq, row);
        self.waiting.get(&seq)
    }

    /// Takes the waiting row `seq` out of the queue (given up on).
    pub(crate) fn take_back(&mut self, seq: u64) -> Option<Row> {
        self.waiting.remove(&seq)
    }

    /// Rows waiting and running.
    pub(crate) fn len(&self) -> usize {
        self.waiting.len() + self.running.len()
    }

    /// Rows handed to workers.
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// When the oldest row still in the queue was queued. Rows are queued in sequence
    /// order, so that is the first waiting one or one of the few running.
    pub(crate) fn oldest(&self) -> Option<SystemTime> {
        self.waiting
            .values()
            .next()
            .into_iter()
            .chain(self.running.values())
            .map(|r| r.queued)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use listener_core::{Dn, Entry};

    use super::*;
    use crate::workers::job::JobCall;

    fn row(seq: u64, dn: &str, uuid: &str) -> Row {
        let mut new = Entry::new(Dn::parse(dn).unwrap());
        new.insert("entryUUID", [uuid]).unwrap();
        let job = Job {
            transaction_id: seq,
            call: JobCall::Create {
                dn: new.dn().clone(),
                new,
            },
        };
        let bytes = job.encode();
        Row::new(seq, &job, bytes)
    }

    fn take(lanes: &mut Lanes) -> Option<u64> {
        lanes.take_ready().map(|r| r.seq)
    }

    #[test]
    fn same_object_waits_different_objects_pass() {
        let mut lanes = Lanes::default();
        lanes.push(row(1, "uid=a,dc=x", "A"));
        lanes.push(row(2, "uid=a,dc=x", "A"));
        lanes.push(row(3, "uid=b,dc=x", "B"));
        assert_eq!(take(&mut lanes), Some(1));
        // 2 is the same object as running 1; 3 is not.
        assert_eq!(take(&mut lanes), Some(3));
        assert_eq!(take(&mut lanes), None);
        lanes.finish(1);
        assert_eq!(take(&mut lanes), Some(2));
        assert_eq!(lanes.len(), 2);
        assert_eq!(lanes.running(), 2);
    }

    #[test]
    fn a_row_never_passes_an_earlier_waiting_row_of_its_object() {
        let mut lanes = Lanes::default();
        lanes.push(row(1, "uid=a,dc=x", "A"));
        lanes.push(row(2, "uid=b,dc=x", "B"));
        lanes.push(row(3, "uid=b,dc=x", "B"));
        assert_eq!(take(&mut lanes), Some(1));
        assert_eq!(take(&mut lanes), Some(2));
        lanes.finish(2);
        // A delete and re-create at one DN: another entryUUID, the same DN.
        lanes.push(row(4, "uid=a,dc=x", "A2"));
        assert_eq!(take(&mut lanes), Some(3));
        assert_eq!(take(&mut lanes), None, "4 shares the DN of running 1");
        lanes.finish(1);
        assert_eq!(take(&mut lanes), Some(4));
    }

    #[test]
    fn a_row_given_back_runs_again_before_later_rows_of_its_object() {
        let mut lanes = Lanes::default();
        lanes.push(row(1, "uid=a,dc=x", "A"));
        lanes.push(row(2, "uid=a,dc=x", "A"));
        assert_eq!(take(&mut lanes), Some(1));
        assert_eq!(lanes.give_back(1).map(|r| r.crashes), Some(1));
        assert_eq!(take(&mut lanes), Some(1));
        assert_eq!(take(&mut lanes), None);
        assert!(lanes.oldest().is_some());
        // Given up on after a crash: the object's next row may run.
        assert_eq!(lanes.give_back(1).map(|r| r.crashes), Some(2));
        assert!(lanes.take_back(1).is_some());
        assert_eq!(take(&mut lanes), Some(2));
        assert_eq!(lanes.len(), 1);
    }
}
