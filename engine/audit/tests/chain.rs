//! The audit log: what is appended verifies, and every change to the file is found.

use std::path::Path;

use chimera_audit::{AuditLog, CheckpointSigner, Event, Recorder, verify};
use sha3::Digest;

/// A stand-in for the engine's ML-DSA-65 key: a keyed hash only its holder can compute.
struct TestKey(&'static [u8]);

impl CheckpointSigner for TestKey {
    fn key_id(&self) -> String {
        "test-key".into()
    }
    fn sign(&self, message: &[u8]) -> Vec<u8> {
        sha3::Sha3_256::new()
            .chain_update(self.0)
            .chain_update(message)
            .finalize()
            .to_vec()
    }
}

const KEY: TestKey = TestKey(b"the engine's secret");

fn signed_by_key(key_id: &str, message: &[u8], signature: &[u8]) -> bool {
    key_id == "test-key" && KEY.sign(message) == signature
}

fn head_down(head: &str) -> Event {
    Event::HeadDown {
        head: head.into(),
        reason: "killed by signal 9".into(),
    }
}

/// A log of 7 records: 5 events and a checkpoint after the 3rd and the 5th.
fn written(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("audit.log");
    let mut log = AuditLog::open(&path).unwrap();
    log.append(
        [
            Event::EngineStarted {
                engine_key: "abc".into(),
            },
            Event::refused("BAD_SIGNATURE", "the signature does not verify", b"doc"),
            head_down("q0"),
        ],
        Some(&KEY),
    )
    .unwrap();
    log.append([head_down("a1")], None).unwrap();
    log.append(
        [Event::KeyRevoked {
            name: "intern".into(),
            key_id: "00ff".into(),
        }],
        Some(&KEY),
    )
    .unwrap();
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    std::fs::write(
        path,
        lines.iter().map(|l| format!("{l}\n")).collect::<String>(),
    )
    .unwrap();
}

/// Where `verify` finds the log broken: the file, the line and what.
fn fault_in(path: &Path) -> (String, usize, String) {
    match verify(path, signed_by_key) {
        Err(chimera_audit::AuditError::Broken { path, line, what }) => (path, line, what),
        other => panic!("expected a broken log, got {other:?}"),
    }
}

fn fault(path: &Path) -> (usize, String) {
    let (_, line, what) = fault_in(path);
    (line, what)
}

#[test]
fn what_is_appended_verifies_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!(report.records, 7);
    assert_eq!(report.checkpoints, 2);
    assert_eq!(report.last_checkpoint, Some(6));
    assert_eq!(report.unsigned, 0);
    let events: Vec<String> = lines(&path)
        .iter()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            line["record"]["event"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        events,
        [
            "engine_started",
            "refused",
            "head_down",
            "checkpoint",
            "head_down",
            "key_revoked",
            "checkpoint"
        ]
    );
    // The report's head is the last line's hash.
    let last: serde_json::Value = serde_json::from_str(lines(&path).last().unwrap()).unwrap();
    assert_eq!(last["hash"], report.head.as_str());
}

#[test]
fn a_changed_record_is_found_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let original = lines(&path);
    for (index, line) in original.iter().enumerate() {
        let mut changed = original.clone();
        // One letter of the record's time: still valid JSON, still a record.
        let at = line.find("\"at\":\"").unwrap() + 6;
        let digit = if line.as_bytes()[at] == b'2' {
            "3"
        } else {
            "2"
        };
        changed[index].replace_range(at..at + 1, digit);
        write_lines(&path, &changed);
        let (number, what) = fault(&path);
        assert_eq!(number, index + 1, "{what}");
        assert!(what.contains("was changed"), "{what}");
    }
}

#[test]
fn a_removed_or_moved_record_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let original = lines(&path);
    let mut removed = original.clone();
    removed.remove(2);
    write_lines(&path, &removed);
    let (number, what) = fault(&path);
    assert_eq!(number, 3);
    assert!(what.contains("record 3 where record 2 should be"), "{what}");

    let mut swapped = original.clone();
    swapped.swap(1, 2);
    write_lines(&path, &swapped);
    assert_eq!(fault(&path).0, 2);
}

/// Whoever edits the file can recompute every hash after a change; only the key signs.
#[test]
fn a_rewritten_chain_fails_at_the_next_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut hash = [0u8; 32];
    let rewritten: Vec<String> = lines(&path)
        .iter()
        .map(|l| {
            let line: serde_json::Value = serde_json::from_str(l).unwrap();
            let record = serde_json::to_string(&line["record"])
                .unwrap()
                .replace("\"q0\"", "\"q1\"");
            hash = sha3::Sha3_256::new()
                .chain_update(hash)
                .chain_update(record.as_bytes())
                .finalize()
                .into();
            format!("{{\"hash\":\"{}\",\"record\":{record}}}", hex::encode(hash))
        })
        .collect();
    write_lines(&path, &rewritten);
    let (number, what) = fault(&path);
    assert_eq!(number, 4, "{what}");
    assert!(what.contains("checkpoint 3 is not signed"), "{what}");
}

#[test]
fn a_write_cut_short_is_reported_and_the_next_append_goes_on_from_the_line_before() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"hash\":\"12").unwrap();
    assert!(fault(&path).1.contains("incomplete"));
    let mut log = AuditLog::open(&path).unwrap();
    log.append([head_down("q1")], Some(&KEY)).unwrap();
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!((report.records, report.unsigned), (9, 0));
}

#[test]
fn records_after_the_last_checkpoint_are_counted_as_unsigned() {
    let dir = tempfile::tempdir().unwrap();
    let path = written(dir.path());
    let mut log = AuditLog::open(&path).unwrap();
    log.append([head_down("q1"), head_down("q0")], None)
        .unwrap();
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!((report.records, report.unsigned), (9, 2));
}

/// Four writers with handles of their own append 25 events each at once, each event with a
/// checkpoint when `signed(i)`.
fn four_writers(path: &Path, rotate_at: Option<u64>, signed: impl Fn(usize) -> bool + Sync) {
    std::thread::scope(|scope| {
        for writer in 0..4 {
            let signed = &signed;
            scope.spawn(move || {
                let mut log = AuditLog::open(path).unwrap().rotating_at(rotate_at);
                for i in 0..25 {
                    let signer: Option<&dyn CheckpointSigner> = signed(i).then_some(&KEY);
                    log.append([head_down(&format!("w{writer}-{i}"))], signer)
                        .unwrap();
                }
            });
        }
    });
}

#[test]
fn writers_in_turn_from_many_handles_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    four_writers(&path, None, |i| i % 5 == 4);
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!(report.records, 100 + 20);
    assert_eq!(report.checkpoints, 20);
}

#[test]
fn the_recorder_writes_every_event_and_signs_them_when_it_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let recorder = Recorder::start(AuditLog::open(&path).unwrap(), Box::new(KEY)).unwrap();
    for i in 0..500 {
        recorder.record(head_down(&format!("h{i}")));
    }
    recorder.finish();
    recorder.record(head_down("after the end"));
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!(report.unsigned, 0);
    assert_eq!(report.records - report.checkpoints, 500);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("\"h499\"") && !text.contains("after the end"));
}

#[test]
fn a_flood_of_refusals_is_written_one_by_one_up_to_a_rate_and_counted_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let recorder = Recorder::start(AuditLog::open(&path).unwrap(), Box::new(KEY)).unwrap();
    let flood = 5_000;
    for i in 0..flood {
        let reason = ["BAD_SIGNATURE", "MALFORMED"][i % 2];
        recorder.record(Event::refused(
            reason,
            "refused",
            format!("doc {i}").as_bytes(),
        ));
    }
    recorder.record(head_down("after the flood"));
    recorder.finish();
    verify(&path, signed_by_key).unwrap();

    let records: Vec<serde_json::Value> = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap()["record"].clone())
        .collect();
    let one_by_one = records.iter().filter(|r| r["event"] == "refused").count();
    let counts: Vec<_> = records
        .iter()
        .filter(|r| r["event"] == "refusals_counted")
        .collect();
    let counted: u64 = counts
        .iter()
        .flat_map(|r| r["by_reason"].as_object().unwrap().values())
        .map(|n| n.as_u64().unwrap())
        .sum();
    // The burst, and what the bucket refilled while the loop ran; every other refusal counted.
    assert!(
        (200..1_000).contains(&one_by_one),
        "{one_by_one} written one by one"
    );
    assert_eq!(one_by_one as u64 + counted, flood as u64);
    assert!(counts[0]["by_reason"]["MALFORMED"].as_u64().unwrap() > 0);
    // The count comes before the event that followed the flood.
    let position = |event: &str| records.iter().position(|r| r["event"] == event).unwrap();
    assert!(position("refusals_counted") < position("head_down"));
}

/// A log that goes on in a new file past 2 KiB, after `batches` signed appends of one event.
fn rotated(path: &Path, batches: usize) {
    let mut log = AuditLog::open(path).unwrap().rotating_at(Some(2048));
    for i in 0..batches {
        log.append([head_down(&format!("h{i}"))], Some(&KEY))
            .unwrap();
    }
}

/// The files the log at `path` went on from, oldest first.
fn renamed(path: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.len() == 12))
        .collect();
    files.sort();
    files
}

fn record(line: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).unwrap()["record"].clone()
}

#[test]
fn a_log_past_its_size_goes_on_in_a_new_file_and_verifies_across_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // A writer that opened the log before it was renamed, as `chimera trust` beside the engine.
    let mut early = AuditLog::open(&path).unwrap();
    rotated(&path, 40);
    early.append([head_down("late")], Some(&KEY)).unwrap();

    let files = renamed(&path);
    assert!(files.len() >= 4, "{files:?}");
    let report = verify(&path, signed_by_key).unwrap();
    // 41 events with a checkpoint each, and a `continued` record opening each new file.
    assert_eq!(report.records, 82 + files.len() as u64);
    assert_eq!(report.checkpoints, 41);
    assert_eq!((report.first, report.files), (0, files.len() as u64 + 1));
    assert_eq!(report.unsigned, 0);
    let mut previous = None;
    for file in files.iter().chain([&path]) {
        let lines = lines(file);
        let first = record(&lines[0]);
        if let Some(previous) = previous.replace(file.file_name().unwrap().to_owned()) {
            assert_eq!(first["event"], "continued");
            assert_eq!(first["previous"], previous.to_str().unwrap());
        }
        // A renamed file ends signed and is named after its last record.
        let last = record(lines.last().unwrap());
        assert_eq!(last["event"], "checkpoint");
        if *file != path {
            let name = format!("audit.log.{:012}", last["seq"].as_u64().unwrap());
            assert_eq!(file.file_name().unwrap().to_str(), Some(name.as_str()));
        }
    }
    // The late writer's record went to the log as it is now, not to the file renamed under it.
    assert!(lines(&path).iter().any(|l| l.contains("\"late\"")));
}

#[test]
fn a_log_whose_oldest_files_were_removed_verifies_from_the_first_left_but_not_without_a_middle_one()
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    rotated(&path, 40);
    let files = renamed(&path);
    let all = verify(&path, signed_by_key).unwrap();

    std::fs::remove_file(&files[0]).unwrap();
    let report = verify(&path, signed_by_key).unwrap();
    let first_left = record(&lines(&files[1])[0])["seq"].as_u64().unwrap();
    assert_eq!(report.first, first_left);
    assert_eq!(report.records, all.records - first_left);
    assert_eq!(report.head, all.head);

    std::fs::remove_file(&files[2]).unwrap();
    let (file, line, what) = fault_in(&path);
    assert_eq!((file, line), (files[3].display().to_string(), 1));
    assert!(what.contains("a whole file of them"), "{what}");
}

#[test]
fn a_changed_record_in_a_renamed_file_is_found_there() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    rotated(&path, 40);
    let files = renamed(&path);
    let mut changed = lines(&files[1]);
    assert!(changed[1].contains("\"killed by"), "{}", changed[1]);
    changed[1] = changed[1].replace("\"killed by", "\"shot by");
    write_lines(&files[1], &changed);
    let (file, line, what) = fault_in(&path);
    assert_eq!((file, line), (files[1].display().to_string(), 2));
    assert!(what.contains("was changed"), "{what}");
}

#[test]
fn writers_in_turn_that_each_rename_the_log_keep_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    four_writers(&path, Some(1024), |_| true);
    let files = renamed(&path).len() as u64;
    assert!(files >= 10, "{files}");
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!(report.records, 200 + files);
    assert_eq!(report.files, files + 1);
}

/// A crash between a rotation's two steps leaves the log with a second name.
#[test]
fn a_second_name_of_the_log_left_by_a_crash_is_not_checked_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    rotated(&path, 40);
    let before = verify(&path, signed_by_key).unwrap();
    std::fs::hard_link(&path, dir.path().join("audit.log.999999999999")).unwrap();
    assert_eq!(verify(&path, signed_by_key).unwrap(), before);
}

#[test]
fn a_log_that_cannot_be_renamed_keeps_every_event_once_and_is_renamed_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    // The new file cannot be made where a directory has its name.
    std::fs::create_dir(dir.path().join("audit.log.new")).unwrap();
    rotated(&path, 10);
    assert!(renamed(&path).is_empty());
    assert_eq!(verify(&path, signed_by_key).unwrap().records, 20);
    std::fs::remove_dir(dir.path().join("audit.log.new")).unwrap();
    rotated(&path, 1);
    assert_eq!(renamed(&path).len(), 1);
    let report = verify(&path, signed_by_key).unwrap();
    assert_eq!((report.records, report.files), (23, 2));
}
