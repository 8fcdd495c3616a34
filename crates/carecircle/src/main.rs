//! The `carecircle` binary: serve the record, run the demo partnership, import FHIR data,
//! migrate the database.

mod guard;
mod hl7_ingest;
mod hl7_send;
mod import;
mod link;
mod lists;
mod token;

/// mimalloc: the record's hot paths (JSON, index extraction) allocate many small strings, which
/// glibc's allocator serves markedly slower.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use carecircle_http::{router, HttpConfig, DEFAULT_MAX_BODY_BYTES};
use carecircle_record::{custodian_reference, Caller, Record};
use carecircle_store::Store;
use clap::{Args, Parser, Subcommand};

/// carecircle: a shared care record for health and social care partnerships, served as a FHIR R4
/// API from one binary. Data lives in an embedded SQLite file by default, or in PostgreSQL.
#[derive(Parser)]
#[command(name = "carecircle", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    storage: StorageArgs,
    /// Log format: `text` for people, `json` for log collectors.
    #[arg(long, global = true, default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    #[command(subcommand)]
    command: Command,
}

/// Where the record is kept.
#[derive(Args, Clone)]
pub(crate) struct StorageArgs {
    /// Directory of the embedded SQLite database (created if missing). Ignored with --database.
    #[arg(long, global = true, env = "CARECIRCLE_DATA_DIR", default_value = "data")]
    pub(crate) data_dir: PathBuf,
    /// A PostgreSQL URL (postgres://user@host:port/db) to use instead of the embedded SQLite file.
    #[arg(long, global = true, env = "CARECIRCLE_DATABASE_URL")]
    pub(crate) database: Option<String>,
    /// Directory of the server's signing keys (default: DATA_DIR/keys). Servers sharing one
    /// PostgreSQL database must share it too.
    #[arg(long, global = true, env = "CARECIRCLE_KEY_DIR")]
    key_dir: Option<PathBuf>,
}

/// Settings of the HTTP server.
#[derive(Args, Clone)]
struct ServeArgs {
    /// Address to listen on. Use 0.0.0.0:8080 only behind a TLS-terminating proxy.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Public base URL used in Location headers and Bundle links (default: http://LISTEN).
    #[arg(long)]
    base_url: Option<String>,
    /// Largest request body accepted, in bytes; larger requests get 413.
    #[arg(long, default_value_t = DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Custodian recorded for writes that send no X-Custodian header (Organization/{id}).
    #[arg(long, default_value = "Organization/carecircle-partnership")]
    default_custodian: String,
    #[command(flatten)]
    auth: token::AuthArgs,
    /// The partnership's consent scheme: opt-out (shared for direct care unless the person
    /// objects) or opt-in (nothing shared until the person agrees).
    #[arg(long, value_enum, default_value = "opt-out", env = "CARECIRCLE_CONSENT_SCHEME")]
    consent_scheme: guard::ConsentScheme,
    /// Also receive HL7 v2 ADT messages over MLLP on this address (off unless given; given
    /// without a value: 127.0.0.1:2575). Partners are recognised by their sending facility
    /// (MSH-4), an Organization identifier in urn:carecircle:hl7v2:facility.
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "127.0.0.1:2575")]
    mllp: Option<SocketAddr>,
    /// Minutes an alerted contact has to acknowledge a care-plan alert before it escalates to the
    /// next contact the plan names (a plan's own `acknowledge-within` overrides it).
    #[arg(long, default_value_t = 30)]
    alert_ack_minutes: i64,
    /// Hours within which repeats of the same event alert are merged instead of re-sent.
    #[arg(long, default_value_t = 24)]
    alert_merge_hours: i64,
    /// Seconds a websocket binding token (`Subscription/$get-ws-binding-token`) stays usable.
    #[arg(long, default_value_t = 300)]
    ws_token_seconds: u64,
    /// Send change events through NATS JetStream at this URL (nats://host:4222) instead of the
    /// in-process bus, so that several `serve` processes sharing one PostgreSQL database deliver
    /// each notification and raise each alert once. NATS must be reachable at start-up.
    #[arg(long, value_name = "URL", env = "CARECIRCLE_NATS_URL")]
    nats: Option<String>,
    /// The JetStream stream of change events (created if missing; letters, digits, '-', '_').
    /// Every process of one deployment must name the same stream.
    #[arg(long, value_name = "NAME", default_value = "carecircle-events", env = "CARECIRCLE_NATS_STREAM")]
    nats_stream: String,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the FHIR R4 API (migrating the database first).
    ///
    /// Example: carecircle serve --listen 127.0.0.1:8080
    Serve(ServeArgs),
    /// Create the demo partnership if it is absent, then serve it and print its URL.
    ///
    /// The demo holds 14 partner organisations, their staff, about 2,000 fictional people whose
    /// records are spread across partners under local identifiers, and "Joe" with his
    /// multi-agency crisis plan. It is generated from --seed; no real personal data.
    Demo {
        #[command(flatten)]
        serve: ServeArgs,
        /// Seed of the generator: the same seed always gives the same partnership.
        #[arg(long, default_value_t = 2017)]
        seed: u64,
        /// Number of people to generate.
        #[arg(long, default_value_t = 2000)]
        people: usize,
    },
    /// Import FHIR JSON files, Bundles and NDJSON, from files or folders (recursively).
    ///
    /// Resources keep their ids. transaction and batch Bundles are processed as if POSTed;
    /// collection and searchset Bundles have their entries imported; other Bundles are stored.
    /// Prints a summary of what was created, updated and refused, with reasons.
    Import {
        /// Files or folders to import (.json and .ndjson).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// The partner organisation supplying the data (Organization/{id}).
        #[arg(long, default_value = "Organization/carecircle-partnership")]
        custodian: String,
        /// Resources written per database transaction.
        #[arg(long, default_value_t = 2000)]
        batch_size: usize,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Print a token from the development issuer (accepted by `demo`, and by `serve --dev-issuer`).
    ///
    /// Examples: carecircle token --user prac-vale-mh-trust-01;
    /// carecircle token --system --org org-minsterford-hospital; carecircle token --admin;
    /// carecircle token --user prac-x --purpose ETREAT --reason "unconscious in ED"
    Token(token::TokenArgs),
    /// The tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Link partner lists (CSV): decide which records are the same person.
    ///
    /// Example: carecircle link --mapping gp.toml --out clusters.csv gp.csv
    Link(link::LinkArgs),
    /// Partners' lists of active clients (CSV with a TOML mapping).
    #[command(subcommand)]
    Lists(lists::ListsCommand),
    /// HL7 v2 tools: send messages over MLLP.
    #[command(subcommand)]
    Hl7(hl7_send::Hl7Command),
    /// Write the demo partnership as NDJSON without loading it (test data for partners'
    /// integrations and for benchmarks; ~4.6 resources per person).
    DemoData {
        /// File to write.
        #[arg(long)]
        out: PathBuf,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2017)]
        seed: u64,
        /// Number of people to generate.
        #[arg(long, default_value_t = 2000)]
        people: usize,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every entry against its hash, its position and the signed checkpoints. Exits 0 with
    /// the entry count and root hash when intact, 1 naming the first bad entry otherwise.
    Verify,
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(storage: &StorageArgs) -> anyhow::Result<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match &storage.database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(carecircle_store_postgres::PostgresStore::connect(url).await.context("connecting to PostgreSQL")?)
        }
        Some(_) => {
            bail!("--database must be a postgres:// URL; leave it out to use the embedded SQLite store in --data-dir")
        }
        None => Arc::new(
            carecircle_store_sqlite::SqliteStore::open_dir(&storage.data_dir)
                .with_context(|| format!("opening the SQLite store in {}", storage.data_dir.display()))?,
        ),
    };
    store.migrate().await.context("migrating the database")?;
    Ok(store)
}

/// Where the notifier reads change events from.
enum Events {
    InProcess(carecircle_notify::EventStream),
    Nats(Box<carecircle_notify::NatsEvents>),
}

async fn serve(
    store: Arc<dyn Store>,
    storage: &StorageArgs,
    args: &ServeArgs,
    key_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let default_custodian = custodian_reference(&args.default_custodian)
        .map_err(|issue| anyhow::anyhow!("--default-custodian: {}", issue.diagnostics))?;
    let base_url =
        args.base_url.clone().unwrap_or_else(|| format!("http://{}", args.listen)).trim_end_matches('/').to_string();
    carecircle_http::init_metrics();
    let origin = guard::audit_origin(&base_url)?;
    // Every committed write is announced on the event bus; the notifier turns changes into
    // subscription notifications and care-plan alerts. With --nats the bus is a JetStream stream
    // shared by every process of the deployment; otherwise an in-process queue.
    let (bus, events): (Arc<dyn carecircle_record::EventBus>, Events) = match &args.nats {
        Some(url) => {
            let nats =
                carecircle_notify::NatsEvents::connect(url, &args.nats_stream).await.map_err(anyhow::Error::msg)?;
            tracing::info!(stream = nats.stream_name(), "change events go through NATS JetStream");
            if storage.database.is_none() {
                tracing::warn!("--nats with the embedded SQLite store: only one process can serve it");
            }
            (Arc::new(nats.bus()), Events::Nats(Box::new(nats)))
        }
        None => {
            let (bus, stream) = carecircle_notify::InProcessBus::new();
            (Arc::new(bus), Events::InProcess(stream))
        }
    };
    let store: Arc<dyn Store> = Arc::new(carecircle_record::PublishingStore::new(store, bus));
    let record =
        guard::guarded_record(store, storage, key_dir, &origin, args.consent_scheme, &default_custodian).await?;
    let mut notify_config = carecircle_notify::NotifyConfig::new(base_url.clone(), default_custodian.clone());
    notify_config.alerts.acknowledge_within = time::Duration::minutes(args.alert_ack_minutes.max(1));
    notify_config.alerts.merge_window = time::Duration::hours(args.alert_merge_hours.max(0));
    notify_config.websocket_token_ttl = std::time::Duration::from_secs(args.ws_token_seconds.clamp(1, 3600));
    let notifier = carecircle_notify::Notifier::new(record.clone(), notify_config).map_err(anyhow::Error::msg)?;
    let _notify_task = match events {
        Events::InProcess(stream) => notifier.start(stream).await,
        Events::Nats(nats) => notifier.start_nats(*nats).await,
    }
    .map_err(anyhow::Error::msg)?;
    let config = HttpConfig {
        base_url: base_url.clone(),
        max_body_bytes: args.max_body_bytes,
        default_custodian: Caller { custodian: default_custodian },
        load_person_index_at_start: true,
    };
    let auth = std::sync::Arc::new(token::auth_config(key_dir, &base_url, &args.auth).await?);
    if let (Some(issuer), Some(jwks)) = (&args.auth.oidc_issuer, &args.auth.oidc_jwks) {
        token::refresh_jwks_periodically(auth.clone(), issuer.clone(), jwks.clone());
    }
    if args.auth.dev_issuer {
        tracing::warn!("the development issuer is on: tokens from `carecircle token` are accepted");
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mllp = match args.mllp {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("listening for MLLP on {address}"))?;
            let bound = listener.local_addr().context("reading the MLLP address")?;
            println!("carecircle HL7 v2 ADT over MLLP at {bound}");
            let handler = Arc::new(hl7_ingest::AdtIngest::new(record.clone()));
            Some(tokio::spawn(carecircle_mllp::serve(
                listener,
                handler,
                carecircle_mllp::MllpConfig::default(),
                shutdown.clone(),
            )))
        }
        None => None,
    };
    let app = router(record, config, auth).layer(axum::Extension(notifier));
    let listener =
        tokio::net::TcpListener::bind(args.listen).await.with_context(|| format!("listening on {}", args.listen))?;
    println!("carecircle FHIR R4 API at {base_url}  (CapabilityStatement: {base_url}/metadata)");
    tracing::info!(%base_url, "serving");
    let http_shutdown = shutdown.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            http_shutdown.cancel();
        })
        .await
        .context("serving HTTP");
    // The MLLP listener finishes the messages in hand (acknowledging them) before the process ends.
    shutdown.cancel();
    if let Some(mllp) = mllp {
        if let Err(error) = mllp.await {
            tracing::error!(%error, "the MLLP listener failed");
        }
    }
    served
}

async fn shutdown_signal() {
    // If the signal handler cannot be installed the server simply runs until killed.
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(&cli.log_format);
    let key_dir = token::key_dir(&cli.storage.key_dir, &cli.storage.data_dir);
    match cli.command {
        Command::Serve(args) => serve(open_store(&cli.storage).await?, &cli.storage, &args, &key_dir).await,
        Command::Audit(AuditCommand::Verify) => {
            if guard::verify(&cli.storage, &key_dir).await? {
                Ok(())
            } else {
                std::process::exit(1);
            }
        }
        Command::Token(args) => {
            println!("{}", token::mint(&key_dir, &args)?);
            Ok(())
        }
        Command::Demo { serve: mut args, seed, people } => {
            args.auth.dev_issuer = true;
            // The demo's agreements are held by the council, which hosts the partnership's
            // governance; the administrator writes as it.
            args.default_custodian = format!("Organization/{}", carecircle_demo::well_known::GOVERNANCE_HOST_ORG);
            let store = open_store(&cli.storage).await?;
            import::ensure_demo(&Record::new(store.clone()), seed, people, &args.default_custodian).await?;
            let base = args.base_url.clone().unwrap_or_else(|| format!("http://{}", args.listen));
            println!(
                "Joe's record from every partner: {base}/Patient/{}/$everything",
                carecircle_demo::well_known::JOE_PATIENT_MH_TRUST
            );
            println!(
                "Tokens for its users: carecircle --data-dir {} token --user <Practitioner id>",
                cli.storage.data_dir.display()
            );
            serve(store, &cli.storage, &args, &key_dir).await
        }
        Command::Import { paths, custodian, batch_size } => {
            let custodian = custodian_reference(&custodian)
                .map_err(|issue| anyhow::anyhow!("--custodian: {}", issue.diagnostics))?;
            let record = Record::new(open_store(&cli.storage).await?);
            let summary = import::import_paths(&record, &Caller { custodian }, &paths, batch_size.max(1)).await?;
            println!("{summary}");
            if summary.n_failed > 0 {
                std::process::exit(2);
            }
            Ok(())
        }
        Command::DemoData { out, seed, people } => {
            let n = import::write_demo_ndjson(&out, seed, people)?;
            println!("wrote {n} resources to {}", out.display());
            Ok(())
        }
        Command::Link(args) => link::run(&args),
        Command::Hl7(hl7_send::Hl7Command::Send(args)) => {
            if !hl7_send::send(&args).await? {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Lists(lists::ListsCommand::Import(args)) => {
            let record = Record::new(open_store(&cli.storage).await?);
            lists::import(&record, &args).await
        }
        Command::Migrate => {
            let store = open_store(&cli.storage).await?;
            println!("the {} database schema is up to date", store.backend_name());
            Ok(())
        }
    }
}
