//! One queued call of an asynchronous module: what the listener writes into the module's
//! queue in the transaction's own cache commit (the outbox), and what a worker gets.

use std::hash::{DefaultHasher, Hasher};

use listener_core::{Command, Dn, Entry};

use serde::{Deserialize, Serialize};

use crate::listener::call::Invocation;

/// A call of an asynchronous module, owning its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    /// The transaction that carried the change.
    pub transaction_id: u64,
    /// The call.
    pub call: JobCall,
}

/// The three calls of the asynchronous API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum JobCall {
    /// `create`.
    Create { dn: Dn, new: Entry },
    /// `modify` (with `old_dn` for a move).
    Modify {
        dn: Dn,
        old: Entry,
        new: Entry,
        old_dn: Option<Dn>,
    },
    /// `remove`.
    Remove { dn: Dn, old: Entry },
}

/// A job that does not read back: written by another version, or damaged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a queued call does not read back: {0}")]
pub(crate) struct JobError(String);

impl Job {
    /// The job of `invocation` in transaction `id`; `None` for a classic call, which no
    /// asynchronous module gets.
    pub(crate) fn from_invocation(id: u64, invocation: Invocation<'_>) -> Option<Job> {
        let call = match invocation {
            Invocation::Create { dn, new } => JobCall::Create {
                dn: dn.clone(),
                new: new.clone(),
            },
            Invocation::Modify {
                dn,
                old,
                new,
                old_dn,
            } => JobCall::Modify {
                dn: dn.clone(),
                old: old.clone(),
                new: new.clone(),
                old_dn: old_dn.cloned(),
            },
            Invocation::Remove { dn, old } => JobCall::Remove {
                dn: dn.clone(),
                old: old.clone(),
            },
            Invocation::Classic { .. } => return None,
        };
        Some(Job {
            transaction_id: id,
            call,
        })
    }

    /// The module call this job makes.
    pub(crate) fn invocation(&self) -> Invocation<'_> {
        match &self.call {
            JobCall::Create { dn, new } => Invocation::Create { dn, new },
            JobCall::Modify {
                dn,
                old,
                new,
                old_dn,
            } => Invocation::Modify {
                dn,
                old,
                new,
                old_dn: old_dn.as_ref(),
            },
            JobCall::Remove { dn, old } => Invocation::Remove { dn, old },
        }
    }

    /// The object's DN (the new one for a move).
    pub(crate) fn dn(&self) -> &Dn {
        match &self.call {
            JobCall::Create { dn, .. }
            | JobCall::Modify { dn, .. }
            | JobCall::Remove { dn, .. } => dn,
        }
    }

    /// What makes two jobs "the same object": see [`lanes`].
    pub(crate) fn lanes(&self) -> Vec<u64> {
        lanes(&self.invocation())
    }

    /// The command letter of the call, for logs.
    pub(crate) fn command(&self) -> Command {
        self.invocation().parts().3
    }

    /// The job's bytes (postcard), as the queue and the worker channel carry them.
    pub(crate) fn encode(&self) -> Vec<u8> {
        encode(self.transaction_id, &self.invocation()).expect("a job is never a classic call")
    }

    /// Reads a job back from [`Job::encode`]'s bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Job, JobError> {
        let record: JobRecord<'_> =
            postcard::from_bytes(bytes).map_err(|e| JobError(e.to_string()))?;
        record.into_job()
    }
}

/// The serialized form: DNs as strings, entries as (name, values) lists.
#[derive(Serialize, Deserialize)]
struct JobRecord<'a> {
    transaction_id: u64,
    /// `a` create, `m` modify, `d` remove.
    kind: char,
    #[serde(borrow)]
    dn: &'a str,
    old_dn: Option<&'a str>,
    old: Option<EntryRecord<'a>>,
    new: Option<EntryRecord<'a>>,
}

#[derive(Serialize, Deserialize)]
struct EntryRecord<'a> {
    #[serde(borrow)]
    dn: &'a str,
    attributes: Vec<(&'a str, Vec<&'a [u8]>)>,
}

impl<'a> From<&'a Entry> for EntryRecord<'a> {
    fn from(entry: &'a Entry) -> Self {
        EntryRecord {
            dn: entry.dn().as_str(),
            attributes: entry
                .attributes()
                .map(|a| {
                    (
                        a.desc.as_str(),
                        a.values.iter().map(Vec::as_slice).collect(),
                    )
                })
                .collect(),
        }
    }
}

impl EntryRecord<'_> {
    fn into_entry(self) -> Result<Entry, JobError> {
        let mut entry = Entry::new(parse_dn(self.dn)?);
        for (name, values) in self.attributes {
            entry
                .insert(name, values)
                .map_err(|e| JobError(format!("attribute {name}: {e}")))?;
        }
        Ok(entry)
    }
}

/// The bytes of the job `invocation` in transaction `id` makes ([`Job::encode`]), written
/// straight from the borrowed call: the listener queues without copying the states first.
/// `None` for a classic call, which no asynchronous module gets.
pub(crate) fn encode(id: u64, invocation: &Invocation<'_>) -> Option<Vec<u8>> {
    let (kind, dn, old, new, old_dn) = match *invocation {
        Invocation::Create { dn, new } => ('a', dn, None, Some(new), None),
        Invocation::Modify {
            dn,
            old,
            new,
            old_dn,
        } => ('m', dn, Some(old), Some(new), old_dn),
        Invocation::Remove { dn, old } => ('d', dn, Some(old), None, None),
        Invocation::Classic { .. } => return None,
    };
    let record = JobRecord {
        transaction_id: id,
        kind,
        dn: dn.as_str(),
        old_dn: old_dn.map(Dn::as_str),
        old: old.map(EntryRecord::from),
        new: new.map(EntryRecord::from),
    };
    Some(postcard::to_stdvec(&record).expect("a job always encodes"))
}

/// What makes two calls "the same object", whose calls must not overlap or pass each
/// other: the entryUUIDs of the states involved, and the normalized DN and old DN. A
/// delete and a re-create at one DN have two entryUUIDs and share the DN. A lane is a
/// hash: two objects whose lanes collide merely wait for each other.
pub(crate) fn lanes(invocation: &Invocation<'_>) -> Vec<u64> {
    let (dn, old, new, _) = invocation.parts();
    let old_dn = match *invocation {
        Invocation::Modify { old_dn, .. } => old_dn,
        _ => None,
    };
    let mut lanes = vec![dn_lane(dn.normalized())];
    if let Some(old_dn) = old_dn {
        lanes.push(dn_lane(old_dn.normalized()));
    }
    for entry in [old, new].into_iter().flatten() {
        if let Some(uuid) = entry.first_str("entryUUID") {
            lanes.push(uuid_lane(uuid));
        }
    }
    lanes.sort_unstable();
    lanes.dedup();
    lanes
}

/// The lane of a normalized DN.
pub(crate) fn dn_lane(normalized: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u8(b'd');
    h.write(normalized.as_bytes());
    h.finish()
}

/// The lane of an entryUUID (compared without case).
pub(crate) fn uuid_lane(uuid: &str) -> u64 {
    let mut h = DefaultHasher::new();
    h.write_u8(b'u');
    for b in uuid.bytes() {
        h.write_u8(b.to_ascii_lowercase());
    }
    h.finish()
}

impl JobRecord<'_> {
    fn into_job(self) -> Result<Job, JobError> {
        let dn = parse_dn(self.dn)?;
        let old = self.old.map(EntryRecord::into_entry).transpose()?;
        let new = self.new.map(EntryRecord::into_entry).transpose()?;
        let missing = |what: &str| JobError(format!("a `{}` call without {what}", self.kind));
        let call = match self.kind {
            'a' => JobCall::Create {
                dn,
                new: new.ok_or_else(|| missing("a new state"))?,
            },
            'm' => JobCall::Modify {
                dn,
                old: old.ok_or_else(|| missing("an old state"))?,
                new: new.ok_or_else(|| missing("a new state"))?,
                old_dn: self.old_dn.map(parse_dn).transpose()?,
            },
            'd' => JobCall::Remove {
                dn,
                old: old.ok_or_else(|| missing("an old state"))?,
            },
            other => return Err(JobError(format!("unknown call kind `{other}`"))),
        };
        Ok(Job {
            transaction_id: self.transaction_id,
            call,
        })
    }
}

fn parse_dn(text: &str) -> Result<Dn, JobError> {
    Dn::parse(text).map_err(|e| JobError(format!("DN {text:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(dn: &str, uuid: &str) -> Entry {
        let mut e = Entry::new(Dn::parse(dn).unwrap());
        e.insert("entryUUID", [uuid]).unwrap();
        e.insert("jpegPhoto", [vec![0u8, 255, 10]]).unwrap();
        e
    }

    #[test]
    fn jobs_read_back_as_written() {
        let old = entry("uid=a,dc=x", "1111");
        let new = entry("uid=b,dc=x", "1111");
        let jobs = [
            JobCall::Create {
                dn: new.dn().clone(),
                new: new.clone(),
            },
            JobCall::Modify {
                dn: new.dn().clone(),
                old: old.clone(),
                new: new.clone(),
                old_dn: Some(old.dn().clone()),
            },
            JobCall::Remove {
                dn: old.dn().clone(),
                old: old.clone(),
            },
        ];
        for call in jobs {
            let job = Job {
                transaction_id: 42,
                call,
            };
            assert_eq!(Job::decode(&job.encode()).unwrap(), job);
        }
    }

    #[test]
    fn damaged_jobs_are_errors() {
        assert!(Job::decode(b"").is_err());
        assert!(Job::decode(&[0xff; 8]).is_err());
    }

    #[test]
    fn lanes_join_uuid_dn_and_old_dn() {
        let old = entry("uid=A,dc=x", "AbC");
        let new = entry("uid=b,dc=x", "abc");
        let job = Job {
            transaction_id: 1,
            call: JobCall::Modify {
                dn: new.dn().clone(),
                old: old.clone(),
                new,
                old_dn: Some(old.dn().clone()),
            },
        };
        let mut expected = vec![
            dn_lane("uid=a,dc=x"),
            dn_lane("uid=b,dc=x"),
            uuid_lane("abc"),
        ];
        expected.sort_unstable();
        assert_eq!(job.lanes(), expected);
        // A re-create at the old DN shares a lane with it, though its entryUUID differs.
        let again = Job {
            transaction_id: 2,
            call: JobCall::Create {
                dn: old.dn().clone(),
                new: entry("uid=a,dc=x", "other"),
            },
        };
        assert!(again.lanes().contains(&dn_lane("uid=a,dc=x")));
        assert!(!again.lanes().contains(&uuid_lane("abc")));
    }
}
