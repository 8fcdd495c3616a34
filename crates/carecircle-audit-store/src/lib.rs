//! Storage of the tamper-evident audit log on SQLite (its own `audit.db`) or PostgreSQL (tables
//! in a given schema).
//!
//! [`AuditStore`] reads: verification, proofs, checkpoints, the person's access log and the
//! governance reports. [`AuditLog`] adds the writer: one task that batches concurrent
//! [`AuditLog::append`] calls into one transaction (group commit), answers each caller only once
//! its entries are durable, keeps the Merkle frontier and signs checkpoints as configured.

mod batch;
mod postgres;
mod review;
mod sqlite;
mod time_blocks;
mod verification;

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use carecircle_audit::merkle::{self, Hash, Subtree};
use carecircle_audit::{
    AuditEntry, AuditRecord, Checkpoint, CheckpointError, LogSigner, LogVerifier, Tamper, Verifier, VerifyReport,
};
use tokio::sync::{mpsc, oneshot};

use batch::{fold_perfect, Sealer, STORED_LEVEL_STEP};
pub use review::{BreakGlassReview, QueuedBreakGlass, ReviewFilter, ReviewOutcome};

/// Failures of audit storage (not findings of verification: those are [`Tamper`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuditStoreError {
    /// The database failed.
    #[error("audit storage: {0}")]
    Backend(String),
    /// The writer task is gone (the log was closed or the runtime shut down).
    #[error("the audit writer has stopped")]
    WriterStopped,
    /// A proof was asked for outside the tree.
    #[error("no entry {seq} in a tree of {tree_size} entries")]
    OutOfRange {
        /// The entry asked for.
        seq: u64,
        /// The tree size asked for.
        tree_size: u64,
    },
    /// The stored writer state cannot be used.
    #[error("the stored audit state is corrupt: {0}")]
    CorruptState(String),
    /// A key or checkpoint problem.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The signing key file could not be read or written.
    #[error("audit key file {path}: {message}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

pub(crate) fn backend_error(error: impl std::fmt::Display) -> AuditStoreError {
    AuditStoreError::Backend(error.to_string())
}

/// A half-open period of time in UTC milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// First millisecond included.
    pub from_ms: i64,
    /// First millisecond excluded.
    pub until_ms: i64,
}

/// One user's access to people outside their care relationships over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnusualAccess {
    /// The user.
    pub user_id: String,
    /// The organisation they acted for.
    pub organisation: Option<String>,
    /// How many distinct people they accessed without a care relationship.
    pub persons_outside_care: u64,
}

/// One user's use of break-glass over a period, within one organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassCount {
    /// The user.
    pub user_id: String,
    /// The organisation they acted for.
    pub organisation: Option<String>,
    /// Entries concerning a person made under break-glass.
    pub break_glass_entries: u64,
    /// All entries concerning a person: the rate's denominator.
    pub person_entries: u64,
}

/// An inclusion proof from storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The entry.
    pub seq: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The entry's stored leaf hash.
    pub leaf_hash: Hash,
    /// The audit path, nearest the leaf first.
    pub hashes: Vec<Hash>,
}

/// A stored signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The entries covered.
    pub tree_size: u64,
    /// When it was signed, UTC milliseconds.
    pub created_ms: i64,
    /// The signed note (C2SP tlog-checkpoint), as served to clients.
    pub note: String,
}

/// When the writer signs checkpoints.
#[derive(Debug, Clone)]
pub struct AuditLogConfig {
    /// Sign after this many entries since the last checkpoint.
    pub checkpoint_every_entries: u64,
    /// Sign when entries have waited this long since the last checkpoint.
    pub checkpoint_interval: Duration,
    /// The most records one group commit takes from concurrent callers (one caller's records
    /// always go in one transaction, however many).
    pub max_batch: usize,
}

impl Default for AuditLogConfig {
    fn default() -> Self {
        AuditLogConfig {
            checkpoint_every_entries: 100_000,
            checkpoint_interval: Duration::from_secs(1),
            max_batch: 20_000,
        }
    }
}

/// What a backend can do; one implementation per database.
#[async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    async fn migrate(&self) -> Result<(), AuditStoreError>;
    /// In one transaction holding the write lock: read the state, place the records after it,
    /// write rows, subtrees, the new state and any checkpoint; returns the first sequence
    /// number given and the checkpoint written.
    async fn append(
        &self,
        records: Arc<Vec<AuditRecord>>,
        sealer: Arc<Sealer>,
        force_checkpoint: bool,
    ) -> Result<(u64, Option<SignedCheckpoint>), AuditStoreError>;
    async fn tree_size(&self) -> Result<u64, AuditStoreError>;
    async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, AuditStoreError>;
    async fn checkpoint_notes(&self) -> Result<Vec<String>, AuditStoreError>;
    /// `count` hashes at `level` (0: leaf hashes; otherwise a stored level) from `first` on.
    async fn hashes(&self, level: u32, first: u64, count: u64) -> Result<Vec<Hash>, AuditStoreError>;
    async fn entry_content(&self, seq: u64) -> Result<Option<Vec<u8>>, AuditStoreError>;
    async fn verify(&self, verifier: Verifier) -> Result<Result<VerifyReport, Tamper>, AuditStoreError>;
    async fn patient_log(
        &self,
        patient_id: &str,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<Vec<u8>>, AuditStoreError>;
    async fn unusual_access(&self, period: Period, min_persons: u64) -> Result<Vec<UnusualAccess>, AuditStoreError>;
    async fn break_glass(&self, period: Period) -> Result<Vec<BreakGlassCount>, AuditStoreError>;
    /// Entries of action break-glass, newest first, as `(seq, content)`.
    async fn break_glass_uses(
        &self,
        filter: ReviewFilter,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<(u64, Vec<u8>)>, AuditStoreError>;
    /// The reviews of these entries.
    async fn reviews(&self, entry_seqs: &[u64]) -> Result<Vec<BreakGlassReview>, AuditStoreError>;
    /// Inserts a review unless the entry has one; whether it was inserted.
    async fn insert_review(&self, review: &BreakGlassReview) -> Result<bool, AuditStoreError>;
}

/// Read access to a stored audit log, and the place its writer is started from.
#[derive(Clone)]
pub struct AuditStore {
    backend: Arc<dyn Backend>,
}

impl AuditStore {
    /// Opens (creating if needed) the SQLite audit log in the file `path` and migrates it.
    pub async fn open_sqlite(path: &Path) -> Result<AuditStore, AuditStoreError> {
        let backend = sqlite::SqliteAudit::open(path)?;
        let store = AuditStore { backend: Arc::new(backend) };
        store.backend.migrate().await?;
        Ok(store)
    }

    /// Opens the SQLite audit log `audit.db` in `data_dir` (beside the record database).
    pub async fn open_sqlite_dir(data_dir: &Path) -> Result<AuditStore, AuditStoreError> {
        std::fs::create_dir_all(data_dir).map_err(backend_error)?;
        AuditStore::open_sqlite(&data_dir.join("audit.db")).await
    }

    /// Connects to PostgreSQL at `url`, with the audit tables in `schema` (created if missing;
    /// `None`: the server's default search path), and migrates.
    pub async fn connect_postgres(url: &str, schema: Option<&str>) -> Result<AuditStore, AuditStoreError> {
        let backend = postgres::PostgresAudit::connect(url, schema).await?;
        let store = AuditStore { backend: Arc::new(backend) };
        store.backend.migrate().await?;
        Ok(store)
    }

    /// The number of entries.
    pub async fn tree_size(&self) -> Result<u64, AuditStoreError> {
        self.backend.tree_size().await
    }

    /// The newest signed checkpoint, as served at the checkpoint endpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<SignedCheckpoint>, AuditStoreError> {
        self.backend.latest_checkpoint().await
    }

    /// One entry, decoded.
    pub async fn entry(&self, seq: u64) -> Result<Option<AuditEntry>, AuditStoreError> {
        let Some(content) = self.backend.entry_content(seq).await? else { return Ok(None) };
        AuditRecord::decode(&content).map(Some).map_err(|e| AuditStoreError::CorruptState(format!("entry {seq}: {e}")))
    }

    /// Checks every entry in order against its leaf hash, its position, its index columns and
    /// every stored checkpoint (whose signatures must verify with `key`). The outer error is a
    /// storage failure; the inner one the first sign of tampering.
    pub async fn verify(&self, key: &LogVerifier) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
        let notes = self.backend.checkpoint_notes().await?;
        let verifier = match Verifier::new(key, notes.iter().map(String::as_str)) {
            Ok(verifier) => verifier,
            Err(tamper) => return Ok(Err(tamper)),
        };
        self.backend.verify(verifier).await
    }

    /// The inclusion proof of entry `seq` in the tree of `tree_size` entries (e.g. the latest
    /// checkpoint's), read from stored subtree hashes: at most a few hundred hashes whatever
    /// the log's size.
    pub async fn inclusion_proof(&self, seq: u64, tree_size: u64) -> Result<InclusionProof, AuditStoreError> {
        let current = self.backend.tree_size().await?;
        if seq >= tree_size || tree_size > current {
            return Err(AuditStoreError::OutOfRange { seq, tree_size });
        }
        let plan = merkle::inclusion_plan(seq, tree_size);
        let hashes = self.assemble(&plan).await?;
        let leaf = self.subtree_hash(Subtree { level: 0, index: seq }).await?;
        Ok(InclusionProof { seq, tree_size, leaf_hash: leaf, hashes })
    }

    /// The consistency proof between the trees of `old_size` and `new_size` entries.
    pub async fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, AuditStoreError> {
        let current = self.backend.tree_size().await?;
        if old_size > new_size || new_size > current {
            return Err(AuditStoreError::OutOfRange { seq: old_size, tree_size: new_size });
        }
        self.assemble(&merkle::consistency_plan(old_size, new_size)).await
    }

    /// The root of the tree of the first `tree_size` entries, from stored hashes.
    pub async fn root(&self, tree_size: u64) -> Result<Hash, AuditStoreError> {
        let steps = vec![merkle::range_subtrees(0, tree_size)];
        Ok(self.assemble(&steps).await?.pop().unwrap_or(merkle::EMPTY_ROOT))
    }

    async fn assemble(&self, plan: &[merkle::ProofStep]) -> Result<Vec<Hash>, AuditStoreError> {
        let mut known: HashMap<Subtree, Hash> = HashMap::new();
        for subtree in plan.iter().flatten() {
            if !known.contains_key(subtree) {
                known.insert(*subtree, self.subtree_hash(*subtree).await?);
            }
        }
        merkle::assemble(plan, |s| {
            known.get(&s).copied().ok_or(AuditStoreError::CorruptState("missing subtree".into()))
        })
    }

    /// The hash of a complete subtree: stored at levels 0, 8, 16, ...; folded from the stored
    /// level below otherwise.
    async fn subtree_hash(&self, subtree: Subtree) -> Result<Hash, AuditStoreError> {
        let base = subtree.level - subtree.level % STORED_LEVEL_STEP;
        let span = subtree.level - base;
        let count = 1u64 << span;
        let hashes = self.backend.hashes(base, subtree.index << span, count).await?;
        if hashes.len() as u64 != count {
            return Err(AuditStoreError::CorruptState(format!(
                "missing stored hashes for the subtree at level {} index {}",
                subtree.level, subtree.index
            )));
        }
        Ok(fold_perfect(hashes))
    }

    /// The entries concerning person `patient_id`, newest first: `limit` of them before entry
    /// `before_seq` (exclusive; `None` from the newest). Page on with the last entry's `seq`.
    pub async fn access_log_for_patient(
        &self,
        patient_id: &str,
        before_seq: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, AuditStoreError> {
        let contents = self.backend.patient_log(patient_id, before_seq, limit).await?;
        contents
            .iter()
            .map(|content| AuditRecord::decode(content).map_err(|e| AuditStoreError::CorruptState(e.to_string())))
            .collect()
    }

    /// Users who accessed at least `min_persons` distinct people outside their care
    /// relationships in `period`, most first.
    pub async fn unusual_access(
        &self,
        period: Period,
        min_persons: u64,
    ) -> Result<Vec<UnusualAccess>, AuditStoreError> {
        self.backend.unusual_access(period, min_persons).await
    }

    /// Break-glass use per user and organisation in `period` (users who used it), most first;
    /// sum by organisation for the organisation rate.
    pub async fn break_glass_by_user(&self, period: Period) -> Result<Vec<BreakGlassCount>, AuditStoreError> {
        self.backend.break_glass(period).await
    }
}

/// Where an appender is told its sequence numbers.
type AppendReply = oneshot::Sender<Result<Range<u64>, AuditStoreError>>;

/// Where a `checkpoint_now` caller is told the outcome.
type CheckpointReply = oneshot::Sender<Result<Option<SignedCheckpoint>, AuditStoreError>>;

enum Command {
    Append { records: Vec<AuditRecord>, reply: AppendReply },
    Checkpoint { reply: CheckpointReply },
}

/// The audit log with its writer. Cheap to clone; the writer stops when the last clone is
/// dropped (after finishing what it was given).
#[derive(Clone)]
pub struct AuditLog {
    store: AuditStore,
    commands: mpsc::Sender<Command>,
    verifier: LogVerifier,
}

impl AuditLog {
    /// Starts the writer for `store`, signing checkpoints with `signer` (whose name is the
    /// log's origin). Must be called inside a tokio runtime.
    pub fn start(store: AuditStore, signer: LogSigner, config: AuditLogConfig) -> AuditLog {
        let (commands, receiver) = mpsc::channel(4096);
        let verifier = signer.verifier();
        let sealer = Arc::new(Sealer {
            signer,
            every_entries: config.checkpoint_every_entries,
            interval: config.checkpoint_interval,
        });
        tokio::spawn(write_loop(store.backend.clone(), sealer, receiver, config));
        AuditLog { store, commands, verifier }
    }

    /// The read side.
    pub fn store(&self) -> &AuditStore {
        &self.store
    }

    /// The log's public key, for the checkpoint endpoint and verification.
    pub fn verifier(&self) -> &LogVerifier {
        &self.verifier
    }

    /// Appends `records` in order and returns their sequence numbers once they are durable
    /// (committed with synchronous writes). Concurrent calls share one transaction.
    pub async fn append(&self, records: Vec<AuditRecord>) -> Result<Range<u64>, AuditStoreError> {
        if records.is_empty() {
            let size = self.store.tree_size().await?;
            return Ok(size..size);
        }
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Append { records, reply }).await.map_err(|_| AuditStoreError::WriterStopped)?;
        answer.await.map_err(|_| AuditStoreError::WriterStopped)?
    }

    /// Appends one record; see [`AuditLog::append`].
    pub async fn append_one(&self, record: AuditRecord) -> Result<u64, AuditStoreError> {
        Ok(self.append(vec![record]).await?.start)
    }

    /// Signs a checkpoint now if the log grew since the last one (or none exists yet), after
    /// everything appended before this call; returns the latest checkpoint.
    pub async fn checkpoint_now(&self) -> Result<Option<SignedCheckpoint>, AuditStoreError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(Command::Checkpoint { reply }).await.map_err(|_| AuditStoreError::WriterStopped)?;
        answer.await.map_err(|_| AuditStoreError::WriterStopped)??;
        self.store.latest_checkpoint().await
    }

    /// Verifies the whole log with this log's key; see [`AuditStore::verify`].
    pub async fn verify(&self) -> Result<Result<VerifyReport, Tamper>, AuditStoreError> {
        self.store.verify(&self.verifier).await
    }
}

/// How long the writer waits, after a commit, for the callers it just answered to send their
/// next records before it starts the next commit without them. Callers that come back sooner end
/// the wait early; a commit (an fsync) takes milliseconds, so this costs little and lets one
/// commit carry every concurrent caller instead of alternating halves of them.
const GROUP_WINDOW: Duration = Duration::from_micros(500);

/// What one commit carries: the records of its callers, in order, and whom to answer.
#[derive(Default)]
struct Batch {
    records: Vec<AuditRecord>,
    appenders: Vec<(usize, AppendReply)>,
    checkpointers: Vec<CheckpointReply>,
}

impl Batch {
    fn add(&mut self, command: Command) {
        match command {
            Command::Append { records: mut more, reply } => {
                self.appenders.push((more.len(), reply));
                self.records.append(&mut more);
            }
            Command::Checkpoint { reply } => self.checkpointers.push(reply),
        }
    }

    fn callers(&self) -> usize {
        self.appenders.len() + self.checkpointers.len()
    }

    fn is_empty(&self) -> bool {
        self.callers() == 0
    }

    /// Tells every caller the outcome of the commit that carried this batch.
    fn answer(self, result: Result<(u64, Option<SignedCheckpoint>), AuditStoreError>) {
        match result {
            Ok((first_seq, checkpoint)) => {
                let mut at = first_seq;
                for (count, reply) in self.appenders {
                    let _ = reply.send(Ok(at..at + count as u64));
                    at += count as u64;
                }
                for reply in self.checkpointers {
                    let _ = reply.send(Ok(checkpoint.clone()));
                }
            }
            Err(error) => {
                tracing::error!(%error, "audit append failed");
                for (_, reply) in self.appenders {
                    let _ = reply.send(Err(error.clone()));
                }
                for reply in self.checkpointers {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// The writer: classic group commit. While one commit is in flight (its fsync), requests queue
/// into the next batch; when it completes, its callers are answered and the writer waits up to
/// [`GROUP_WINDOW`] for them to come back before committing everything queued in one
/// transaction. A caller is never answered before the commit carrying its records returned.
async fn write_loop(
    backend: Arc<dyn Backend>,
    sealer: Arc<Sealer>,
    mut receiver: mpsc::Receiver<Command>,
    config: AuditLogConfig,
) {
    let mut pending = Batch::default();
    let mut open = true;
    loop {
        if pending.is_empty() {
            if !open {
                break;
            }
            match tokio::time::timeout(config.checkpoint_interval, receiver.recv()).await {
                Ok(Some(command)) => pending.add(command),
                Ok(None) => break,
                Err(_) => {
                    // Idle: sign a checkpoint if entries have waited long enough.
                    if let Err(error) = backend.append(Arc::new(Vec::new()), sealer.clone(), false).await {
                        tracing::error!(%error, "audit checkpoint failed");
                    }
                    continue;
                }
            }
            // Take whatever else is already queued.
            while pending.records.len() < config.max_batch {
                match receiver.try_recv() {
                    Ok(command) => pending.add(command),
                    Err(_) => break,
                }
            }
        }
        let Batch { records, appenders, checkpointers } = std::mem::take(&mut pending);
        let records = Arc::new(records);
        let force = !checkpointers.is_empty();
        let carried = Batch { records: Vec::new(), appenders, checkpointers };
        let commit = {
            let (backend, sealer) = (backend.clone(), sealer.clone());
            tokio::spawn(async move { backend.append(records, sealer, force).await })
        };
        tokio::pin!(commit);
        // While the commit is in flight, queue what arrives for the next one.
        let result = loop {
            tokio::select! {
                biased;
                result = &mut commit => break result.unwrap_or_else(|e| Err(backend_error(e))),
                command = receiver.recv(), if open && pending.records.len() < config.max_batch => match command {
                    Some(command) => pending.add(command),
                    None => open = false,
                },
            }
        };
        let expected = carried.callers() + pending.callers();
        carried.answer(result);
        // Gather the callers just answered (they usually append again at once) for a moment.
        let deadline = tokio::time::Instant::now() + GROUP_WINDOW;
        while open && pending.callers() < expected && pending.records.len() < config.max_batch {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(command)) => pending.add(command),
                Ok(None) => open = false,
                Err(_) => break,
            }
        }
    }
}

/// Reads the log's signing key from `path`, or creates one named `origin` there (readable by
/// the owner only) when the file does not exist.
pub fn load_or_create_signer(path: &Path, origin: &str) -> Result<LogSigner, AuditStoreError> {
    let key_error = |message: String| AuditStoreError::KeyFile { path: path.display().to_string(), message };
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(LogSigner::from_secret_key(&text)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let signer = LogSigner::generate(origin)?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| key_error(e.to_string()))?;
            }
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt as _;
                options.mode(0o600);
            }
            use std::io::Write as _;
            let mut file = options.open(path).map_err(|e| key_error(e.to_string()))?;
            file.write_all(format!("{}\n", signer.secret_key()).as_bytes()).map_err(|e| key_error(e.to_string()))?;
            file.sync_all().map_err(|e| key_error(e.to_string()))?;
            Ok(signer)
        }
        Err(error) => Err(key_error(error.to_string())),
    }
}

/// Re-exported so callers need not depend on the engine crate for the common types.
pub use carecircle_audit;

/// The checkpoint in a stored note, opened with `key`.
pub fn open_checkpoint(key: &LogVerifier, checkpoint: &SignedCheckpoint) -> Result<Checkpoint, CheckpointError> {
    key.open(&checkpoint.note)
}
