//! Building the guarded record the server runs on: the audit log (beside the record, in the
//! same SQLite directory or PostgreSQL database) and the Cedar access decision loaded from the
//! record's organisations and agreements; and `carecircle audit verify`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use carecircle_access::engine::Scheme;
use carecircle_access::ConsentModel;
use carecircle_audit_store::carecircle_audit::{hex, LogSigner};
use carecircle_audit_store::{load_or_create_signer, AuditLog, AuditLogConfig, AuditStore};
use carecircle_record::{Guard, PolicyAccess, Record};
use carecircle_store::Store;

use crate::StorageArgs;

/// The file of the audit log's checkpoint signing key in the key directory.
const AUDIT_KEY_FILE: &str = "audit-log.key";

/// The partnership's consent scheme.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum ConsentScheme {
    /// Nothing is shared with other partners until the person agrees.
    OptIn,
    /// Shared for direct care unless the person objects.
    OptOut,
}

async fn open_audit_store(storage: &StorageArgs) -> anyhow::Result<AuditStore> {
    match &storage.database {
        Some(url) => AuditStore::connect_postgres(url, None).await.context("opening the audit log in PostgreSQL"),
        None => AuditStore::open_sqlite_dir(&storage.data_dir).await.context("opening the audit log"),
    }
}

/// The guarded record: sessions go through the access decision and the audit log.
pub async fn guarded_record(
    store: Arc<dyn Store>,
    storage: &StorageArgs,
    key_dir: &Path,
    origin: &str,
    scheme: ConsentScheme,
    home: &str,
) -> anyhow::Result<Record> {
    let audit_store = open_audit_store(storage).await?;
    let signer = load_or_create_signer(&key_dir.join(AUDIT_KEY_FILE), origin).context("loading the audit log's key")?;
    let audit = AuditLog::start(audit_store, signer, AuditLogConfig::default());
    let model = match scheme {
        ConsentScheme::OptIn => ConsentModel::OptIn,
        ConsentScheme::OptOut => ConsentModel::OptOut,
    };
    // Person facts may be cached only when this process is the record's only writer (the
    // embedded store); with PostgreSQL other processes may write consents too.
    let cache = storage.database.is_none();
    let access = PolicyAccess::load(Record::new(store.clone()), Scheme::new(model), cache, home)
        .await
        .map_err(|e| anyhow::anyhow!("loading agreements and organisations: {e}"))?;
    Ok(Record::with_guard(store, Guard { access: Arc::new(access), audit: Arc::new(audit) }))
}

/// `carecircle audit verify`: exit 0 with the entry count and root when intact; an error naming
/// the first bad entry otherwise.
pub async fn verify(storage: &StorageArgs, key_dir: &Path) -> anyhow::Result<bool> {
    let key_path = key_dir.join(AUDIT_KEY_FILE);
    let text = std::fs::read_to_string(&key_path).with_context(|| {
        format!("reading the audit log's key {} (verify needs the key that signed it)", key_path.display())
    })?;
    let signer = LogSigner::from_secret_key(text.trim()).map_err(|e| anyhow::anyhow!("{}: {e}", key_path.display()))?;
    let store = open_audit_store(storage).await?;
    match store.verify(&signer.verifier()).await.context("reading the audit log")? {
        Ok(report) => {
            println!(
                "audit log intact: {} entries, root {}, {} signed checkpoints checked",
                report.count,
                hex(&report.root),
                report.checkpoints_checked
            );
            Ok(true)
        }
        Err(tamper) => {
            eprintln!("audit log TAMPERED: {tamper}");
            Ok(false)
        }
    }
}

/// Refuses an origin that would make an ambiguous checkpoint line.
pub fn audit_origin(base_url: &str) -> anyhow::Result<String> {
    let host = base_url.trim_start_matches("https://").trim_start_matches("http://").trim_end_matches('/');
    if host.is_empty() || host.contains(char::is_whitespace) {
        bail!("the base URL '{base_url}' cannot name the audit log");
    }
    Ok(format!("{host}/audit"))
}
