use super::*;

fn txn(id: u64) -> Transaction {
    Transaction {
        id,
        dn: format!("cn=user {id},cn=users,dc=example,dc=com"),
        command: if id.is_multiple_of(2) {
            Command::Modify
        } else {
            Command::Add
        },
        entry_uuid: format!("00000000-0000-0000-0000-{id:012}"),
        csn: format!("20261128000000.{id:06}Z#000000#000#000000"),
        time_us: 1_700_000_000_000_000 + id as i64,
    }
}

fn txns(ids: std::ops::RangeInclusive<u64>) -> Vec<Transaction> {
    ids.map(txn).collect()
}

#[test]
fn appends_look_up_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.last_id(), 0);
    assert_eq!(log.get(1).unwrap(), None);
    log.append(&txns(1..=3), Some(b"cookie-3")).unwrap();
    log.append(&txns(4..=5), Some(b"cookie-5")).unwrap();
    assert_eq!(log.get(4).unwrap(), Some(txn(4)));
    drop(log);

    let log = Translog::open(dir.path()).unwrap();
    assert_eq!((log.first_id(), log.last_id()), (Some(1), 5));
    assert_eq!(log.cookie(), Some(&b"cookie-5"[..]));
    for id in 1..=5 {
        assert_eq!(log.get(id).unwrap(), Some(txn(id)));
    }
    assert_eq!(log.get(6).unwrap(), None);
    assert_eq!(log.range(2, 2).unwrap(), txns(2..=3));
}

#[test]
fn refuses_a_gap_or_a_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=2), None).unwrap();
    assert!(matches!(
        log.append(&[txn(4)], None),
        Err(TranslogError::NotConsecutive { last: 2, got: 4 })
    ));
    assert!(matches!(
        log.append(&[txn(2)], None),
        Err(TranslogError::NotConsecutive { last: 2, got: 2 })
    ));
    assert_eq!(log.last_id(), 2);
}

#[test]
fn a_second_notifier_is_locked_out() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Translog::open(dir.path()).unwrap();
    let second = Translog::open(dir.path());
    assert!(matches!(second, Err(TranslogError::Locked { .. })));
    let message = second.err().unwrap().to_string();
    assert!(message.contains("another notifier"), "{message}");
}

/// Cutting the data file at every byte models a crash at any point of an append: the log
/// reopens with exactly the groups whose records are whole, and appends continue.
#[test]
fn a_torn_tail_at_any_byte_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=2), Some(b"c2")).unwrap();
    let after_first = log.data_len;
    log.append(&txns(3..=4), Some(b"c4")).unwrap();
    let full = log.data_len;
    drop(log);
    let data = std::fs::read(dir.path().join(DATA_FILE)).unwrap();
    let index = std::fs::read(dir.path().join(INDEX_FILE)).unwrap();

    for cut in after_first..full {
        let case = tempfile::tempdir().unwrap();
        std::fs::write(case.path().join(DATA_FILE), &data[..cut as usize]).unwrap();
        std::fs::write(case.path().join(INDEX_FILE), &index).unwrap();
        let mut log = Translog::open(case.path()).unwrap();
        // Even when record 3 is whole, its append did not finish: the log ends at 2 with
        // cookie c2, so the accesslog replays 3 and 4 and neither comes twice.
        let last = log.last_id();
        assert_eq!(last, 2, "cut at {cut}");
        let cookie = log.cookie().unwrap().to_vec();
        assert_eq!(cookie, b"c2", "cut at {cut}");
        for id in 1..=last {
            assert_eq!(log.get(id).unwrap(), Some(txn(id)), "cut at {cut}");
        }
        log.append(&txns(last + 1..=last + 1), Some(b"next"))
            .unwrap();
        drop(log);
        let log = Translog::open(case.path()).unwrap();
        assert_eq!(log.last_id(), last + 1, "cut at {cut}");
        assert!(check(case.path()).unwrap().problems.is_empty());
    }
}

#[test]
fn a_lost_or_stale_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=3), Some(b"c3")).unwrap();
    let stale_index = std::fs::read(dir.path().join(INDEX_FILE)).unwrap();
    log.append(&txns(4..=6), Some(b"c6")).unwrap();
    drop(log);

    std::fs::write(dir.path().join(INDEX_FILE), &stale_index).unwrap();
    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.last_id(), 6);
    assert_eq!(log.get(5).unwrap(), Some(txn(5)));
    assert_eq!(log.cookie(), Some(&b"c6"[..]));
    drop(log);

    std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();
    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.last_id(), 6);
    assert_eq!(log.get(1).unwrap(), Some(txn(1)));

    drop(log);
    std::fs::write(dir.path().join(INDEX_FILE), b"garbage that is not an index").unwrap();
    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.get(6).unwrap(), Some(txn(6)));
}

/// The index is synced once every `INDEX_SYNC_EVERY` entries, not with each append: an
/// entry written after the last sync may not have reached the disk before a power loss,
/// so a reopened log does not trust it, whatever it holds.
#[test]
fn index_entries_written_after_its_last_sync_are_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    let n = INDEX_SYNC_EVERY;
    log.append(&txns(1..=n), Some(b"synced")).unwrap();
    log.append(&txns(n + 1..=n + 3), Some(b"later")).unwrap();
    drop(log);
    let path = dir.path().join(INDEX_FILE);
    let synced = |index: &[u8]| u64::from_le_bytes(index[16..24].try_into().unwrap());
    let mut index = std::fs::read(&path).unwrap();
    assert_eq!(synced(&index), n, "the header counts the entries synced");
    // The entry of n + 1 as a power loss may leave it: zeros. The last entry is whole.
    let at = (INDEX_HEADER + n * 8) as usize;
    index[at..at + 8].fill(0);
    std::fs::write(&path, &index).unwrap();

    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.last_id(), n + 3);
    for id in [1, n, n + 1, n + 2, n + 3] {
        assert_eq!(log.get(id).unwrap(), Some(txn(id)), "ID {id}");
    }
    assert_eq!(log.cookie(), Some(&b"later"[..]));
    drop(log);
    let index = std::fs::read(&path).unwrap();
    assert_eq!(
        synced(&index),
        n + 3,
        "opening writes and syncs the rest of the index"
    );
}

#[test]
fn cookie_only_updates_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=1), Some(b"c1")).unwrap();
    log.append(&[], Some(b"c1-later")).unwrap();
    drop(log);
    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.cookie(), Some(&b"c1-later"[..]));
    assert_eq!(log.last_id(), 1);
}

#[test]
fn prune_keeps_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=10), Some(b"c10")).unwrap();
    assert_eq!(log.prune_before(4).unwrap(), 3);
    assert_eq!((log.first_id(), log.last_id()), (Some(4), 10));
    assert_eq!(log.get(3).unwrap(), None);
    assert_eq!(log.get(4).unwrap(), Some(txn(4)));
    assert_eq!(log.prune_keep_last(2).unwrap(), 5);
    assert_eq!(log.first_id(), Some(9));
    // Pruning everything keeps the newest, so the IDs continue after a reopen.
    assert_eq!(log.prune_before(1000).unwrap(), 1);
    drop(log);
    let mut log = Translog::open(dir.path()).unwrap();
    assert_eq!((log.first_id(), log.last_id()), (Some(10), 10));
    assert_eq!(log.cookie(), Some(&b"c10"[..]));
    log.append(&txns(11..=11), None).unwrap();
    assert_eq!(log.get(11).unwrap(), Some(txn(11)));
}

#[test]
fn exports_udn_text_form() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=2), Some(b"c")).unwrap();
    let mut out = Vec::new();
    log.export(&mut out).unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "1 cn=user 1,cn=users,dc=example,dc=com a\n2 cn=user 2,cn=users,dc=example,dc=com m\n"
    );
}

#[test]
fn check_reports_damage_in_the_middle() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=3), Some(b"c")).unwrap();
    drop(log);
    let path = dir.path().join(DATA_FILE);
    let mut data = std::fs::read(&path).unwrap();
    data[20] ^= 0xff;
    std::fs::write(&path, &data).unwrap();
    let report = check(dir.path()).unwrap();
    assert_eq!(report.transactions, 0);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].contains("checksum"),
        "{:?}",
        report.problems
    );
}

#[test]
fn a_log_that_starts_with_a_cookie_only_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&[], Some(b"start")).unwrap();
    log.append(&txns(1..=1), Some(b"c1")).unwrap();
    assert_eq!(log.get(1).unwrap(), Some(txn(1)));
    drop(log);
    let mut log = Translog::open(dir.path()).unwrap();
    assert_eq!((log.first_id(), log.last_id()), (Some(1), 1));
    log.append(&[], Some(b"c1b")).unwrap();
    log.append(&txns(2..=2), Some(b"c2")).unwrap();
    assert_eq!(log.get(1).unwrap(), Some(txn(1)));
    assert_eq!(log.get(2).unwrap(), Some(txn(2)));
    drop(log);
    let log = Translog::open(dir.path()).unwrap();
    assert_eq!(log.get(2).unwrap(), Some(txn(2)));
    assert_eq!(log.cookie(), Some(&b"c2"[..]));
}

#[test]
fn a_read_only_view_beside_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=3), Some(b"c3")).unwrap();
    let view = Translog::open_read_only(dir.path()).unwrap();
    assert_eq!(view.last_id(), 3);
    assert_eq!(view.get(2).unwrap(), Some(txn(2)));
    log.append(&txns(4..=5), Some(b"c5")).unwrap();
    // A snapshot: what was committed when it was opened.
    assert_eq!(view.last_id(), 3);
    let mut view = Translog::open_read_only(dir.path()).unwrap();
    assert_eq!(view.get(5).unwrap(), Some(txn(5)));
    assert!(matches!(
        view.append(&txns(6..=6), None),
        Err(TranslogError::ReadOnly { .. })
    ));
    assert!(matches!(
        view.prune_before(3),
        Err(TranslogError::ReadOnly { .. })
    ));
}

#[test]
fn a_read_only_view_of_an_unfinished_append_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Translog::open(dir.path()).unwrap();
    log.append(&txns(1..=2), Some(b"c2")).unwrap();
    drop(log);
    let data_path = dir.path().join(DATA_FILE);
    let mut data = std::fs::read(&data_path).unwrap();
    data.extend_from_slice(&[7, 0, 0, 0, 1, 2]);
    std::fs::write(&data_path, &data).unwrap();
    std::fs::remove_file(dir.path().join(INDEX_FILE)).unwrap();

    let view = Translog::open_read_only(dir.path()).unwrap();
    assert_eq!(view.last_id(), 2);
    assert_eq!(view.get(1).unwrap(), Some(txn(1)));
    assert_eq!(std::fs::read(&data_path).unwrap(), data, "files untouched");
    assert!(!dir.path().join(INDEX_FILE).exists());
}

#[test]
fn a_log_has_a_lasting_identity() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let log_a = Translog::open(a.path()).unwrap();
    let id_a = log_a.identity().to_owned();
    assert_eq!(id_a.len(), 32);
    drop(log_a);
    assert_eq!(Translog::open(a.path()).unwrap().identity(), id_a);
    assert_eq!(Translog::open_read_only(a.path()).unwrap().identity(), id_a);
    assert_ne!(Translog::open(b.path()).unwrap().identity(), id_a);
}
