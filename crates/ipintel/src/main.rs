//! The `ipintel` command: serve the API, manage keys, look addresses up.
#![forbid(unsafe_code)]

mod config;
mod data_cmd;
mod enrich;
mod export;
mod keys;
mod logging;
mod lookup;
mod reload;
mod serve;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ipintel_store::Plan;

/// mimalloc, returning freed memory at once (see `ipintel_alloc`).
#[global_allocator]
static ALLOCATOR: ipintel_alloc::Allocator = ipintel_alloc::Allocator;

use crate::config::{
    Env, KeysConfig, LogConfig, LookupConfig, Problems, ServeConfig, ServeFlags, EXIT_CONFIG,
};
use crate::keys::KeysAction;

/// Self-hostable IP intelligence.
///
/// Settings come from environment variables (IPINTEL_BIND, IPINTEL_DATA_DIR,
/// IPINTEL_DB, IPINTEL_TRUSTED_PROXIES, IPINTEL_PLAN_{FREE,PROFESSIONAL,ENTERPRISE,CUSTOM}_DAILY,
/// IPINTEL_KEYS_PER_HOUR_PER_CLIENT, IPINTEL_LOG_FORMAT, RUST_LOG); flags
/// take precedence. Bad configuration exits with code 64.
#[derive(Debug, Parser)]
#[command(name = "ipintel", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGINT or SIGTERM.
    ///
    /// The first signal stops accepting, closes idle connections and lets
    /// requests in flight finish (up to 30 s), then flushes usage counts and
    /// exits 0. A second signal stops at once after a flush of at most 1 s:
    /// exit code 130 (SIGINT) or 143 (SIGTERM).
    ///
    /// Connections: IPINTEL_HEADER_TIMEOUT_SECS (default 10) to send a
    /// request's head, also the keep-alive idle timeout;
    /// IPINTEL_MAX_CONNECTIONS (default 4096) served at once.
    Serve(ServeArgs),
    /// Create, list and revoke API keys.
    Keys(KeysArgs),
    /// Print the record of addresses from the local data (JSON or a table).
    Lookup(LookupArgs),
    /// Add intel to access logs (nginx/Apache combined, JSON lines, CSV).
    ///
    /// Reads FILE (or standard input) and writes each record to standard
    /// output with the intel of its client address added: JSON lines get an
    /// `ipintel` object, CSV rows `ipintel_*` columns. Lines not in the
    /// format are kept without intel, or left out with `--unparsable skip`.
    /// A summary (lines, enriched, invalid addresses, lines without an
    /// address, unparsable lines, time, lines/s) goes to standard error,
    /// with a progress bar while reading a file on a terminal.
    Enrich(EnrichArgs),
    /// Write the local data as a MaxMind DB file (`--mmdb FILE`).
    ///
    /// Every range gets what a lookup answers: geo (country, region, city,
    /// coordinates, time zone), network (ASN, ISP, organisation, connection
    /// type), flags and threat (score, level, reasons). IPv4 lives at
    /// ::/96 and ::ffff:0:0/96 of an IPv6 tree, as MaxMind readers expect.
    Export(ExportArgs),
    /// Manage the IP data: `ipintel data update` downloads the due feeds.
    Data(DataArgs),
}

#[derive(Debug, Args)]
struct DataArgs {
    #[command(subcommand)]
    command: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Download the URL sources that are due (conditional requests,
    /// validation, shrink guard, atomic rename), then build a snapshot to
    /// prove the data loads.
    Update {
        /// Sources file [env: IPINTEL_SOURCES] [default: config/sources.toml].
        #[arg(long, value_name = "FILE")]
        sources: Option<PathBuf>,
        /// Directory with the data [env: IPINTEL_DATA_DIR] [default: data].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Download every URL source in full, due or not, without
        /// conditional requests (replaces a copy whose checksum fails).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [env: IPINTEL_BIND] [default: 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR:PORT")]
    bind: Option<SocketAddr>,
    /// Directory with the data and manifest.json [env: IPINTEL_DATA_DIR] [default: data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// SQLite file, or postgres:// URL, of keys and usage [env: IPINTEL_DB] [default: var/ipintel.db].
    #[arg(long, value_name = "FILE|URL")]
    db: Option<PathBuf>,
    /// Sources file [env: IPINTEL_SOURCES] [default: config/sources.toml if present, else the manifest].
    #[arg(long, value_name = "FILE")]
    sources: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct KeysArgs {
    /// SQLite file, or postgres:// URL, of keys and usage [env: IPINTEL_DB] [default: var/ipintel.db].
    #[arg(long, value_name = "FILE|URL", global = true)]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; prints it once, with its id.
    Create {
        /// Free-text label, e.g. who the key is for.
        #[arg(long)]
        label: Option<String>,
        /// Plan of the key (default: free, provisioned on first use).
        #[arg(long, value_enum)]
        plan: Option<PlanArg>,
        /// Own daily limit; implies the custom plan.
        #[arg(long, value_name = "N")]
        daily_limit: Option<u64>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List keys (ids, labels, plans, dates; never secrets).
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by its id.
    Revoke {
        /// The key id (the 12 characters after `ipintel_`).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PlanArg {
    Free,
    Professional,
    Enterprise,
    Custom,
}

impl From<PlanArg> for Plan {
    fn from(arg: PlanArg) -> Self {
        match arg {
            PlanArg::Free => Plan::Free,
            PlanArg::Professional => Plan::Professional,
            PlanArg::Enterprise => Plan::Enterprise,
            PlanArg::Custom => Plan::Custom,
        }
    }
}

#[derive(Debug, Args)]
struct LookupArgs {
    /// Addresses to look up.
    #[arg(required = true, value_name = "ADDR")]
    addrs: Vec<String>,
    /// Output: the API's JSON record per line, or an aligned table.
    #[arg(long, value_enum, default_value = "json")]
    format: lookup::LookupFormat,
    /// Directory with the data and manifest.json [env: IPINTEL_DATA_DIR] [default: data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct EnrichArgs {
    /// The log to read; standard input when absent or `-`.
    #[arg(value_name = "FILE")]
    input: Option<PathBuf>,
    /// Input format; `auto` looks at the first line.
    #[arg(long, value_enum, default_value = "auto")]
    format: enrich::InputFormat,
    /// JSON member holding the address [default: the first of ip, remote_addr,
    /// client_ip, clientip, src_ip, source_ip, addr, address in the first line].
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// CSV column holding the address [default: the first header of those
    /// names, in any case].
    #[arg(long, value_name = "NAME")]
    column: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    output: enrich::OutputFormat,
    /// Lines not in the input format: kept without intel, or skipped.
    #[arg(long, value_enum, default_value = "keep")]
    unparsable: enrich::Unparsable,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Directory with the data and manifest.json [env: IPINTEL_DATA_DIR] [default: data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The MaxMind DB file to write (replaced atomically).
    #[arg(long, value_name = "FILE", required = true)]
    mmdb: PathBuf,
    /// Directory with the data and manifest.json [env: IPINTEL_DATA_DIR] [default: data].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    ipintel_alloc::return_freed_memory_at_once();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let usage_error = err.use_stderr();
            let _ = err.print();
            return if usage_error {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let env = Env::from_process();
    match cli.command {
        Command::Serve(args) => {
            let flags = ServeFlags {
                bind: args.bind,
                data_dir: args.data_dir,
                db: args.db,
                sources: args.sources,
            };
            start(ServeConfig::load(&env, flags), |c| &c.log, serve::run)
        }
        Command::Keys(args) => {
            let action = match keys_action(args.command) {
                Ok(action) => action,
                Err(message) => {
                    eprintln!("ipintel: {message}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            start(
                KeysConfig::load(&env, args.db),
                |c| &c.log,
                |config| keys::run(config, action),
            )
        }
        Command::Data(args) => {
            let DataCommand::Update {
                sources,
                data_dir,
                force,
            } = args.command;
            start(
                LookupConfig::load(&env, data_dir),
                |c| &c.log,
                |config| data_cmd::update(config, data_cmd::UpdateArgs { sources, force }),
            )
        }
        Command::Lookup(args) => {
            let (addrs, format) = (args.addrs, args.format);
            start(
                LookupConfig::load(&env, args.data_dir),
                |c| &c.log,
                |config| async move { lookup::run(config, &addrs, format).await },
            )
        }
        Command::Enrich(args) => {
            let options = enrich::EnrichOptions {
                input: args.input,
                format: args.format,
                field: args.field,
                column: args.column,
                output: args.output,
                unparsable: args.unparsable,
                quiet: args.quiet,
            };
            start(
                LookupConfig::load(&env, args.data_dir),
                |c| &c.log,
                |config| enrich::run(config, options),
            )
        }
        Command::Export(args) => start(
            LookupConfig::load(&env, args.data_dir),
            |c| &c.log,
            |config| export::run(config, args.mmdb),
        ),
    }
}

fn keys_action(command: KeysCommand) -> Result<KeysAction, String> {
    let action = match command {
        KeysCommand::Create {
            label,
            plan,
            daily_limit,
            json,
        } => KeysAction::Create {
            label,
            plan: keys::plan_for(plan.map(Plan::from), daily_limit)?,
            daily_limit,
            json,
        },
        KeysCommand::List { json } => KeysAction::List { json },
        KeysCommand::Revoke { id } => KeysAction::Revoke { id },
    };
    Ok(action)
}

/// Reports configuration problems (exit 64), or sets up logging and the
/// runtime and runs the command (exit 1 on error).
fn start<C, F, Fut>(config: Result<C, Problems>, log: impl Fn(&C) -> &LogConfig, run: F) -> ExitCode
where
    F: FnOnce(C) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = match config {
        Ok(config) => config,
        Err(problems) => {
            eprint!("ipintel: {problems}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    logging::init(log(&config));
    let outcome = runtime().and_then(|runtime| runtime.block_on(run(config)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ipintel: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// A multi-thread runtime with one worker per available core.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?)
}
