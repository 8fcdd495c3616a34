//! The server's own Ed25519 signing keys (for the tokens its token endpoint and the development
//! issuer mint), kept as PKCS#8 PEM files so several server processes can share them.

use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

/// Why a key could not be loaded, created or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the key file failed.
    #[error("key file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not an Ed25519 PKCS#8 PEM key.
    #[error("key file {path} is not an Ed25519 PKCS#8 PEM private key")]
    Format {
        /// The file.
        path: String,
    },
    /// Signing failed.
    #[error("signing a token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// An Ed25519 signing key with its key id.
#[derive(Clone)]
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
    encoding: EncodingKey,
    kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print private key material.
        f.debug_struct("SigningKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> SigningKey {
        let secret: [u8; 32] = rand::random();
        SigningKey::from_dalek(ed25519_dalek::SigningKey::from_bytes(&secret))
    }

    fn from_dalek(key: ed25519_dalek::SigningKey) -> SigningKey {
        let public = key.verifying_key().to_bytes();
        // The key id is derived from the public key, so every process sharing the file agrees.
        let kid = URL_SAFE_NO_PAD.encode(&public[..12]);
        // PKCS#8 encoding of a valid in-memory key cannot fail; fall back to an empty key that
        // jsonwebtoken will refuse to sign with rather than panicking.
        let der = key.to_pkcs8_der().map(|d| d.as_bytes().to_vec()).unwrap_or_default();
        SigningKey { key, encoding: EncodingKey::from_ed_der(&der), kid }
    }

    /// Parses a PKCS#8 PEM private key.
    pub fn from_pem(pem: &str, path: &str) -> Result<SigningKey, KeyError> {
        let key = ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::Format { path: path.into() })?;
        Ok(SigningKey::from_dalek(key))
    }

    /// The PKCS#8 PEM text of the private key.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.key
            .to_pkcs8_pem(Default::default())
            .map(|pem| pem.to_string())
            .map_err(|_| KeyError::Format { path: "(memory)".into() })
    }

    /// Loads the key at `path`, creating it (readable by the owner only) when absent.
    pub fn load_or_create(path: &Path) -> Result<SigningKey, KeyError> {
        let shown = path.display().to_string();
        let io = |source| KeyError::Io { path: shown.clone(), source };
        match std::fs::read_to_string(path) {
            Ok(pem) => SigningKey::from_pem(&pem, &shown),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(io)?;
                }
                let key = SigningKey::generate();
                write_private(path, key.to_pem()?.as_bytes()).map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The key id (`kid`) put in token headers and the JWKS.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK (`kty: OKP`, `crv: Ed25519`).
    pub fn public_jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes()),
        })
    }

    /// The key that verifies what this key signs.
    pub fn decoding_key(&self) -> DecodingKey {
        DecodingKey::from_ed_der(&self.key.verifying_key().to_bytes())
    }

    /// Signs `claims` as a compact JWS (EdDSA).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_round_trip_through_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("issuer.pem");
        let first = SigningKey::load_or_create(&path).unwrap();
        let again = SigningKey::load_or_create(&path).unwrap();
        assert_eq!(first.kid(), again.kid());
        assert_eq!(first.public_jwk(), again.public_jwk());
        assert!(!format!("{first:?}").contains("BEGIN"));
    }

    #[test]
    fn a_garbled_key_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.pem");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(SigningKey::load_or_create(&path), Err(KeyError::Format { .. })));
    }
}
