//! Signed checkpoints of the audit log in the C2SP `tlog-checkpoint` form: a C2SP `signed-note`
//! whose text is the log's origin, tree size and base64 root hash, signed with Ed25519.
//!
//! ```text
//! carecircle.example/audit
//! 20852163
//! CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=
//!
//! — carecircle.example/audit Az3grl...base64(key id || signature)
//! ```
//!
//! Keys use the signed-note text encodings: the signer key
//! `PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || seed)>` and the verifier key
//! `<name>+<key id hex>+<base64(0x01 || public key)>`, where the key id is the first four bytes
//! of SHA-256(name || "\n" || 0x01 || public key).

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signed-note signature type byte of Ed25519.
const ED25519_TYPE: u8 = 0x01;

/// The dash that starts a signature line (U+2014) and the space after it.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// Why a checkpoint, a note or a key was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// A key or log name that the note format cannot carry.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidName(String),
    /// A malformed key string.
    #[error("malformed key: {0}")]
    MalformedKey(&'static str),
    /// A malformed note or checkpoint text.
    #[error("malformed checkpoint: {0}")]
    Malformed(&'static str),
    /// No signature line by the expected key verifies.
    #[error("no valid signature by {0}")]
    BadSignature(String),
}

/// A log's tree head: which log, how many entries, and the root over them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line, also the signing key's name.
    pub origin: String,
    /// The number of entries covered.
    pub tree_size: u64,
    /// The RFC 6962 root over the first `tree_size` entries.
    pub root: Hash,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+' || c.is_control())
}

fn key_id(name: &str, public_key: &[u8; 32]) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519_TYPE]);
    hasher.update(public_key);
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

fn hex_id(id: &[u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Splits `name+hexid+base64` and checks the key type byte; returns the name, id and key bytes.
fn parse_key_parts(text: &str) -> Result<(String, [u8; 4], [u8; 32]), CheckpointError> {
    // The key is standard base64, which may itself contain '+': split off the name and id only.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(CheckpointError::MalformedKey("expected name+id+key"));
    };
    if !valid_name(name) {
        return Err(CheckpointError::InvalidName(name.to_string()));
    }
    let id = u32::from_str_radix(id, 16)
        .ok()
        .filter(|_| id.len() == 8)
        .ok_or(CheckpointError::MalformedKey("the key id is not 8 hex digits"))?
        .to_be_bytes();
    let key = BASE64.decode(key).map_err(|_| CheckpointError::MalformedKey("the key is not base64"))?;
    let [ED25519_TYPE, rest @ ..] = key.as_slice() else {
        return Err(CheckpointError::MalformedKey("not an Ed25519 key"));
    };
    let bytes: [u8; 32] = rest.try_into().map_err(|_| CheckpointError::MalformedKey("an Ed25519 key is 32 bytes"))?;
    Ok((name.to_string(), id, bytes))
}

impl Checkpoint {
    /// The note text: origin, size and base64 root, each ending in a newline.
    pub fn body(&self) -> String {
        format!("{}\n{}\n{}\n", self.origin, self.tree_size, BASE64.encode(self.root))
    }

    /// Parses a note text; extension lines after the root are allowed and ignored.
    pub fn parse_body(text: &str) -> Result<Checkpoint, CheckpointError> {
        let text = text.strip_suffix('\n').ok_or(CheckpointError::Malformed("the text must end in a newline"))?;
        let mut lines = text.split('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next()) else {
            return Err(CheckpointError::Malformed("fewer than three lines"));
        };
        if origin.is_empty() || lines.any(str::is_empty) {
            return Err(CheckpointError::Malformed("empty line"));
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) || (size.len() > 1 && size.starts_with('0')) {
            return Err(CheckpointError::Malformed("the tree size is not a decimal number"));
        }
        let tree_size = size.parse().map_err(|_| CheckpointError::Malformed("the tree size is too large"))?;
        let root = BASE64.decode(root).map_err(|_| CheckpointError::Malformed("the root is not base64"))?;
        let root: Hash = root.try_into().map_err(|_| CheckpointError::Malformed("the root is not 32 bytes"))?;
        Ok(Checkpoint { origin: origin.to_string(), tree_size, root })
    }
}

/// The log's signing key.
#[derive(Clone)]
pub struct LogSigner {
    name: String,
    key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("LogSigner").field("name", &self.name).finish_non_exhaustive()
    }
}

impl LogSigner {
    /// A new random key for the log named `name` (its origin).
    pub fn generate(name: &str) -> Result<LogSigner, CheckpointError> {
        LogSigner::from_seed(name, rand::random::<[u8; 32]>())
    }

    /// The key with this 32-byte Ed25519 seed.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<LogSigner, CheckpointError> {
        if !valid_name(name) {
            return Err(CheckpointError::InvalidName(name.to_string()));
        }
        Ok(LogSigner { name: name.to_string(), key: SigningKey::from_bytes(&seed) })
    }

    /// Parses the signer key text written by [`LogSigner::secret_key`].
    pub fn from_secret_key(text: &str) -> Result<LogSigner, CheckpointError> {
        let rest = text.trim().strip_prefix("PRIVATE+KEY+").ok_or(CheckpointError::MalformedKey("no PRIVATE+KEY+"))?;
        let (name, id, seed) = parse_key_parts(rest)?;
        let signer = LogSigner::from_seed(&name, seed)?;
        if signer.verifier().key_id != id {
            return Err(CheckpointError::MalformedKey("the key id does not match the key"));
        }
        Ok(signer)
    }

    /// The signer key text (a secret: store it with restricted permissions).
    pub fn secret_key(&self) -> String {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(self.key.as_bytes());
        format!("PRIVATE+KEY+{}+{}+{}", self.name, hex_id(&self.verifier().key_id), BASE64.encode(key))
    }

    /// The name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half.
    pub fn verifier(&self) -> LogVerifier {
        let key = self.key.verifying_key();
        LogVerifier { key_id: key_id(&self.name, key.as_bytes()), name: self.name.clone(), key }
    }

    /// A checkpoint for this log (origin = the key's name).
    pub fn checkpoint(&self, tree_size: u64, root: Hash) -> Checkpoint {
        Checkpoint { origin: self.name.clone(), tree_size, root }
    }

    /// The signed note of `checkpoint`: its text, a blank line and this key's signature line.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = self.verifier().key_id.to_vec();
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n{SIGNATURE_PREFIX}{} {}\n", self.name, BASE64.encode(blob))
    }
}

/// The log's public key, to check signed checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogVerifier {
    name: String,
    key: VerifyingKey,
    key_id: [u8; 4],
}

impl LogVerifier {
    /// Parses the verifier key text written by [`LogVerifier::verifier_key`].
    pub fn from_verifier_key(text: &str) -> Result<LogVerifier, CheckpointError> {
        let (name, id, key) = parse_key_parts(text)?;
        let key = VerifyingKey::from_bytes(&key).map_err(|_| CheckpointError::MalformedKey("not an Ed25519 point"))?;
        if key_id(&name, key.as_bytes()) != id {
            return Err(CheckpointError::MalformedKey("the key id does not match the key"));
        }
        Ok(LogVerifier { name, key, key_id: id })
    }

    /// The verifier key text, safe to publish.
    pub fn verifier_key(&self) -> String {
        let mut key = vec![ED25519_TYPE];
        key.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex_id(&self.key_id), BASE64.encode(key))
    }

    /// The key's name (the log's origin).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks a signed note: a signature line by this key must verify over the text, and the
    /// text must be a checkpoint of this log. Signature lines by other keys are ignored.
    pub fn open(&self, note: &str) -> Result<Checkpoint, CheckpointError> {
        let split = note.rfind("\n\n").ok_or(CheckpointError::Malformed("no blank line before the signatures"))?;
        let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
        let signatures =
            signatures.strip_suffix('\n').ok_or(CheckpointError::Malformed("the signatures must end in a newline"))?;
        let mut verified = false;
        for line in signatures.split('\n') {
            let rest = line.strip_prefix(SIGNATURE_PREFIX).ok_or(CheckpointError::Malformed("bad signature line"))?;
            let (name, blob) = rest.split_once(' ').ok_or(CheckpointError::Malformed("bad signature line"))?;
            if name != self.name {
                continue;
            }
            let Ok(blob) = BASE64.decode(blob) else { continue };
            if blob.len() != 68 || blob[..4] != self.key_id {
                continue;
            }
            let Ok(signature) = Signature::from_slice(&blob[4..]) else { continue };
            if self.key.verify_strict(body.as_bytes(), &signature).is_ok() {
                verified = true;
            }
        }
        if !verified {
            return Err(CheckpointError::BadSignature(self.name.clone()));
        }
        let checkpoint = Checkpoint::parse_body(body)?;
        if checkpoint.origin != self.name {
            return Err(CheckpointError::Malformed("the origin is not this log's"));
        }
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_three_lines() {
        let checkpoint = Checkpoint { origin: "example.com/log".into(), tree_size: 20852163, root: [7; 32] };
        let body = checkpoint.body();
        assert_eq!(body, format!("example.com/log\n20852163\n{}\n", BASE64.encode([7u8; 32])));
        assert_eq!(Checkpoint::parse_body(&body), Ok(checkpoint));
        for bad in ["a\n01\nAA==\n", "a\n1\n", "a\n-1\nAA==\n", "a\n1\nAAAA\n", "a\n1\nAAAA"] {
            assert!(Checkpoint::parse_body(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn names_with_spaces_or_plus_are_refused() {
        assert!(LogSigner::from_seed("a b", [1; 32]).is_err());
        assert!(LogSigner::from_seed("a+b", [1; 32]).is_err());
        assert!(LogSigner::from_seed("", [1; 32]).is_err());
    }

    #[test]
    fn key_texts_round_trip_whatever_their_base64_holds() {
        // Standard base64 uses '+': the key text must still parse, for every key.
        for seed in 0..=255u8 {
            let signer = LogSigner::from_seed("example.com/log", [seed; 32]).unwrap();
            let again = LogSigner::from_secret_key(&signer.secret_key()).unwrap();
            assert_eq!(again.verifier().verifier_key(), signer.verifier().verifier_key());
            assert!(LogVerifier::from_verifier_key(&signer.verifier().verifier_key()).is_ok());
        }
    }
}
