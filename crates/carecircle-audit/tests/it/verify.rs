//! The verifier over an in-memory log: intact logs pass; altered, removed, reordered and
//! rehashed entries are named.

use carecircle_audit::merkle::{leaf_hash, root_of, Frontier};
use carecircle_audit::{check_entry, LogSigner, Tamper, Verifier};

struct Row {
    seq: u64,
    content: Vec<u8>,
    leaf: [u8; 32],
}

/// A log of `n` entries with a signed checkpoint every `every` entries.
fn log(n: u64, every: u64) -> (Vec<Row>, Vec<String>, LogSigner) {
    let signer = LogSigner::from_seed("test/audit", [9; 32]).expect("signer");
    let mut frontier = Frontier::new();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for seq in 0..n {
        let content = super::read_record(&format!("user-{}", seq % 7), &format!("p{}", seq % 13)).encode(seq);
        let leaf = leaf_hash(&content);
        frontier.push(leaf);
        rows.push(Row { seq, content, leaf });
        if (seq + 1) % every == 0 {
            notes.push(signer.sign(&signer.checkpoint(frontier.size(), frontier.root())));
        }
    }
    (rows, notes, signer)
}

fn verify(rows: &[Row], notes: &[String], signer: &LogSigner) -> Result<u64, Tamper> {
    let mut verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str))?;
    for row in rows {
        verifier.push(row.seq, &row.content, &row.leaf)?;
    }
    verifier.finish().map(|report| report.count)
}

/// As storage verifies in parallel: entries checked on their own, then handed over as complete
/// subtrees of 4 where no checkpoint falls inside, one by one elsewhere.
fn verify_in_subtrees(rows: &[Row], notes: &[String], signer: &LogSigner) -> Result<u64, Tamper> {
    let mut verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str))?;
    let mut i = 0;
    while i < rows.len() {
        let first = rows[i].seq;
        let block = &rows[i..(i + 4).min(rows.len())];
        let consecutive = block.len() == 4 && block.iter().zip(first..).all(|(row, seq)| row.seq == seq);
        if consecutive && first == verifier.count() && verifier.subtree_fits(first, 2) {
            let leaves: Result<Vec<_>, _> = block.iter().map(|r| check_entry(r.seq, &r.content, &r.leaf)).collect();
            if let Ok(leaves) = leaves {
                assert!(verifier.push_checked_subtree(first, 2, &root_of(&leaves))?, "fits");
                i += 4;
                continue;
            }
        }
        verifier.push(rows[i].seq, &rows[i].content, &rows[i].leaf)?;
        i += 1;
    }
    verifier.finish().map(|report| report.count)
}

#[test]
fn subtrees_that_would_hide_a_checkpoint_are_not_taken() {
    let (rows, notes, signer) = log(12, 10);
    let mut verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str)).expect("checkpoints");
    let leaves: Vec<[u8; 32]> = rows.iter().map(|r| r.leaf).collect();
    assert!(verifier.push_checked_subtree(0, 3, &root_of(&leaves[..8])).expect("intact"));
    assert!(!verifier.subtree_fits(8, 2), "the checkpoint at 10 is inside 8..12");
    assert_eq!(verifier.push_checked_subtree(8, 2, &root_of(&leaves[8..12])), Ok(false));
    assert!(!verifier.push_checked_subtree(8, 4, &root_of(&leaves[8..12])).expect("not aligned"));
    for row in &rows[8..] {
        verifier.push_checked(row.seq, row.leaf).expect("intact");
    }
    let report = verifier.finish().expect("intact");
    assert_eq!((report.count, report.checkpoints_checked, report.root), (12, 1, root_of(&leaves)));
}

#[test]
fn an_intact_log_verifies_with_its_root() {
    let (rows, notes, signer) = log(100, 10);
    let mut verifier = Verifier::new(&signer.verifier(), notes.iter().map(String::as_str)).expect("checkpoints");
    for row in &rows {
        verifier.push(row.seq, &row.content, &row.leaf).expect("intact");
    }
    let report = verifier.finish().expect("intact");
    assert_eq!((report.count, report.checkpoints_checked), (100, 10));
    let leaves: Vec<[u8; 32]> = rows.iter().map(|r| r.leaf).collect();
    assert_eq!(report.root, carecircle_audit::merkle::root_of(&leaves));
}

#[test]
fn tampering_is_reported_at_the_first_bad_entry() {
    let (rows, notes, signer) = log(100, 10);
    type Tamperer = fn(&mut Vec<Row>);
    let cases: [(&str, Tamperer, Tamper); 6] = [
        ("altered content", |rows| rows[37].content[30] ^= 1, Tamper::Altered { seq: 37 }),
        ("deleted row", |rows| drop(rows.remove(52)), Tamper::Removed { seq: 52, next: 53 }),
        (
            "swapped sequence numbers",
            |rows| {
                let (a, b) = (rows[20].seq, rows[21].seq);
                rows[20].seq = b;
                rows[21].seq = a;
                rows.swap(20, 21);
            },
            Tamper::Reordered { seq: 20, bound_to: 21 },
        ),
        (
            "content and leaf hash rewritten",
            |rows| {
                rows[64].content[30] ^= 1;
                rows[64].leaf = leaf_hash(&rows[64].content);
            },
            Tamper::CheckpointMismatch { tree_size: 70, since: 60 },
        ),
        ("tail removed", |rows| rows.truncate(95), Tamper::Truncated { count: 95, tree_size: 100 }),
        (
            "duplicate row",
            |rows| {
                let copy = Row { seq: rows[9].seq, content: rows[9].content.clone(), leaf: rows[9].leaf };
                rows.insert(10, copy);
            },
            Tamper::OutOfOrder { seq: 9, after: 9 },
        ),
    ];
    for (name, tamper, expected) in cases {
        let mut changed: Vec<Row> =
            rows.iter().map(|r| Row { seq: r.seq, content: r.content.clone(), leaf: r.leaf }).collect();
        tamper(&mut changed);
        assert_eq!(verify(&changed, &notes, &signer), Err(expected.clone()), "{name}");
        assert_eq!(verify_in_subtrees(&changed, &notes, &signer), Err(expected.clone()), "{name}, in subtrees");
        assert!(expected.to_string().contains("entr"), "{name}: {expected}");
    }
    assert_eq!(verify(&rows, &notes, &signer), Ok(100));
    assert_eq!(verify_in_subtrees(&rows, &notes, &signer), Ok(100));
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let (rows, mut notes, signer) = log(20, 10);
    notes[1] = notes[1].replacen("\n20\n", "\n19\n", 1);
    assert!(matches!(verify(&rows, &notes, &signer), Err(Tamper::BadCheckpoint(_))));
}
