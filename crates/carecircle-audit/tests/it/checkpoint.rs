//! Signed checkpoints: the signed-note form, keys, and refusal of anything altered.

use carecircle_audit::merkle::leaf_hash;
use carecircle_audit::{CheckpointError, LogSigner, LogVerifier};

#[test]
fn a_signed_checkpoint_opens_with_the_verifier_key() {
    let signer = LogSigner::from_seed("carecircle.example/audit", [3; 32]).expect("signer");
    let checkpoint = signer.checkpoint(20852163, leaf_hash(b"root"));
    let note = signer.sign(&checkpoint);
    let lines: Vec<&str> = note.lines().collect();
    assert_eq!(lines[..2], ["carecircle.example/audit", "20852163"]);
    assert_eq!(lines[3], "");
    assert!(lines[4].starts_with("\u{2014} carecircle.example/audit "), "{}", lines[4]);
    assert!(note.ends_with('\n'));

    let verifier = LogVerifier::from_verifier_key(&signer.verifier().verifier_key()).expect("verifier key");
    assert_eq!(verifier.open(&note), Ok(checkpoint));
    // Keys round-trip through their text forms.
    let reloaded = LogSigner::from_secret_key(&signer.secret_key()).expect("secret key");
    assert_eq!(reloaded.verifier(), signer.verifier());
    assert!(signer.secret_key().starts_with("PRIVATE+KEY+carecircle.example/audit+"));
}

#[test]
fn altered_notes_and_other_keys_are_refused() {
    let signer = LogSigner::generate("carecircle.example/audit").expect("signer");
    let note = signer.sign(&signer.checkpoint(10, leaf_hash(b"x")));
    let verifier = signer.verifier();

    let bigger = note.replacen("\n10\n", "\n11\n", 1);
    assert!(matches!(verifier.open(&bigger), Err(CheckpointError::BadSignature(_))));
    let other = LogSigner::generate("carecircle.example/audit").expect("other signer");
    assert!(matches!(other.verifier().open(&note), Err(CheckpointError::BadSignature(_))));
    assert!(verifier.open(note.trim_end()).is_err());
    assert!(verifier.open("carecircle.example/audit\n10\n").is_err());

    // An extra signature line by someone else is ignored; ours still verifies.
    let cosigned = format!("{note}\u{2014} witness.example AAAA\n");
    assert!(verifier.open(&cosigned).is_ok());
}

#[test]
fn malformed_keys_are_refused() {
    let signer = LogSigner::from_seed("log", [5; 32]).expect("signer");
    let vkey = signer.verifier().verifier_key();
    let mut wrong_id = vkey.clone();
    wrong_id.replace_range(4..6, if &vkey[4..6] == "00" { "11" } else { "00" });
    assert!(LogVerifier::from_verifier_key(&wrong_id).is_err());
    assert!(LogVerifier::from_verifier_key("log+0000").is_err());
    assert!(LogSigner::from_secret_key(&vkey).is_err());
}
