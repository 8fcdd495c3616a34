//! The verifier over an in-memory log: intact logs pass; altered, removed, reordered and
//! rehashed entries are named.

use carecircle_audit::merkle::{leaf_hash, Frontier};
use carecircle_audit::{LogSigner, Tamper, Verifier};

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
        assert!(expected.to_string().contains("entr"), "{name}: {expected}");
    }
    assert_eq!(verify(&rows, &notes, &signer), Ok(100));
}

#[test]
fn a_forged_checkpoint_is_refused() {
    let (rows, mut notes, signer) = log(20, 10);
    notes[1] = notes[1].replacen("\n20\n", "\n19\n", 1);
    assert!(matches!(verify(&rows, &notes, &signer), Err(Tamper::BadCheckpoint(_))));
}
