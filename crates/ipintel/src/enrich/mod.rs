//! `ipintel enrich`: access logs in, the same records out with the intel
//! of their client address added, from the local data.
//!
//! Input: nginx or Apache combined (or common) log lines, JSON lines with
//! the address in a named member, or CSV with a header row and the address
//! in a named column; from a file or standard input. Output: JSON lines
//! (the record plus an `ipintel` object) or CSV (the record's columns plus
//! `ipintel_*` columns). A summary goes to standard error at the end.

mod combined;
mod intel;
mod jsonl;
mod pipeline;
mod records;
mod text;

use std::fs::File;
use std::io::{self, IsTerminal, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ipintel_core::Snapshot;
use ipintel_data::Aggregates;

use crate::config::{DataConfig, LookupConfig};
use pipeline::{Ended, Source};
use records::{Counts, Job, Layout};

/// `--format`: how the input is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Guess from the first line (combined log, JSON object, or CSV header).
    Auto,
    /// nginx's `combined` log format (the same layout as Apache's).
    Nginx,
    /// Apache's combined (or common) log format.
    Apache,
    /// The NCSA combined (or common) log format.
    Combined,
    /// One JSON object per line; the address in `--field`.
    Jsonl,
    /// CSV with a header row; the address in `--column`.
    Csv,
}

/// `--output`: what to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line: the record plus an `ipintel` object.
    Jsonl,
    /// CSV: the record's columns plus the `ipintel_*` columns.
    Csv,
}

/// `--unparsable`: what to do with lines not in the input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Unparsable {
    /// Write them with their text and no intel (JSON: `{"unparsed": ...,
    /// "ipintel": null}`; CSV: the text in the first column).
    Keep,
    /// Leave them out of the output (they are still counted).
    Skip,
}

/// The options of one run.
#[derive(Debug, Clone)]
pub struct EnrichOptions {
    /// The input file; standard input when `None` or `-`.
    pub input: Option<PathBuf>,
    /// Input layout.
    pub format: InputFormat,
    /// JSON member holding the address.
    pub field: Option<String>,
    /// CSV column holding the address.
    pub column: Option<String>,
    /// Output format.
    pub output: OutputFormat,
    /// Lines not in the format.
    pub unparsable: Unparsable,
    /// No progress bar and no summary.
    pub quiet: bool,
}

/// Names tried, in order, for the address member or column when none is
/// given.
const ADDRESS_NAMES: [&str; 8] = [
    "ip",
    "remote_addr",
    "client_ip",
    "clientip",
    "src_ip",
    "source_ip",
    "addr",
    "address",
];

/// Bytes read ahead to recognise the format.
const HEAD: usize = 64 * 1024;

/// Opens the input, loads the data, enriches, prints the summary.
pub async fn run(config: LookupConfig, options: EnrichOptions) -> anyhow::Result<()> {
    let input = Input::open(options.input.as_ref())?;
    let started = Instant::now();
    let snapshot = load_data(&config.data).await?;
    let load = started.elapsed();
    let quiet = options.quiet;
    let enrich = move || enrich(Arc::new(snapshot), input, &options);
    let (ended, elapsed) = tokio::task::spawn_blocking(enrich)
        .await
        .context("the enrichment task failed")??;
    if let Ended::Done(counts) = ended {
        if !quiet {
            eprintln!("{}", summary(&counts, elapsed, load));
        }
    }
    Ok(())
}

/// Loads the data as `ipintel lookup` does, without the country and AS
/// aggregates that only the API's intel endpoints read (a second or so of
/// a load's few).
async fn load_data(data: &DataConfig) -> anyhow::Result<Snapshot> {
    let dir = data.dir.clone();
    let location = crate::reload::location(data);
    tokio::task::spawn_blocking(move || {
        let sources = ipintel_http::read_sources(&dir, &location)?;
        ipintel_data::load_sources_with(&dir, &sources, Aggregates::OnFirstUse)
    })
    .await
    .context("the data loading task failed")?
    .with_context(|| format!("cannot load the IP data in {}", data.dir.display()))
}

/// The input stream, and its size when it is a file.
struct Input {
    reader: Box<dyn Read + Send>,
    file_size: Option<u64>,
}

impl Input {
    fn open(path: Option<&PathBuf>) -> anyhow::Result<Input> {
        let path = path.filter(|p| p.as_os_str() != "-");
        let Some(path) = path else {
            return Ok(Input {
                reader: Box::new(io::stdin()),
                file_size: None,
            });
        };
        let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let file_size = file.metadata().ok().map(|m| m.len());
        Ok(Input {
            reader: Box::new(file),
            file_size,
        })
    }
}

fn enrich(
    snapshot: Arc<ipintel_core::Snapshot>,
    mut input: Input,
    options: &EnrichOptions,
) -> anyhow::Result<(Ended, Duration)> {
    let started = Instant::now();
    let head = read_head(&mut input.reader).context("cannot read the input")?;
    let first = first_line(&head).to_vec();
    let format = resolve_format(options, &first)?;
    let rest = io::Cursor::new(head).chain(input.reader);
    let (layout, source) = match format {
        InputFormat::Jsonl => {
            let field = json_field(options, &first)?;
            (Layout::Jsonl { field }, Source::Lines(Box::new(rest)))
        }
        InputFormat::Csv => csv_source(options, Box::new(rest))?,
        _ => (Layout::Combined, Source::Lines(Box::new(rest))),
    };
    let job = Arc::new(Job::new(layout, options.output, options.unparsable));
    let progress = input
        .file_size
        .filter(|_| !options.quiet && io::stderr().is_terminal())
        .map(pipeline::progress_bar);
    let ended = pipeline::run(snapshot, job, source, progress)?;
    Ok((ended, started.elapsed()))
}

/// Reads until the first non-blank line is complete (or [`HEAD`] bytes,
/// or the end of the input).
fn read_head(input: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    while head.len() < HEAD {
        let more = HEAD - head.len();
        let at_end = pipeline::fill(input, &mut head, more)?;
        let complete = head
            .split(|b| *b == b'\n')
            .rev()
            .skip(1)
            .any(|l| !l.iter().all(u8::is_ascii_whitespace));
        if at_end || complete {
            break;
        }
    }
    Ok(head)
}

/// The first non-blank line of the head.
fn first_line(head: &[u8]) -> &[u8] {
    let head = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    head.split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .unwrap_or_default()
}

/// The format asked for, or the one the flags and the first line show.
fn resolve_format(options: &EnrichOptions, first: &[u8]) -> anyhow::Result<InputFormat> {
    match options.format {
        InputFormat::Auto => {}
        InputFormat::Nginx | InputFormat::Apache => return Ok(InputFormat::Combined),
        other => return Ok(other),
    }
    if options.field.is_some() {
        return Ok(InputFormat::Jsonl);
    }
    if options.column.is_some() {
        return Ok(InputFormat::Csv);
    }
    if first.is_empty() {
        // Nothing to enrich: any format reads no lines.
        return Ok(InputFormat::Combined);
    }
    if combined::parse(first).is_some() {
        return Ok(InputFormat::Combined);
    }
    if first.trim_ascii_start().starts_with(b"{") {
        return Ok(InputFormat::Jsonl);
    }
    if first.contains(&b',') {
        return Ok(InputFormat::Csv);
    }
    bail!(
        "cannot tell the input format from its first line; \
         pass --format nginx|apache|combined|jsonl|csv"
    )
}

/// `--field`, or the first of [`ADDRESS_NAMES`] that the first line has.
fn json_field(options: &EnrichOptions, first: &[u8]) -> anyhow::Result<String> {
    if let Some(field) = &options.field {
        return Ok(field.clone());
    }
    let found = ADDRESS_NAMES
        .iter()
        .find(|name| jsonl::probe(first, name).is_some_and(|p| p.value.is_some()));
    match found {
        Some(name) => Ok((*name).to_owned()),
        None => bail!(
            "the first JSON line has none of the members {}; name the address member with --field",
            ADDRESS_NAMES.join(", ")
        ),
    }
}

/// Reads the CSV header and finds the address column.
fn csv_source(
    options: &EnrichOptions,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<(Layout, Source)> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(input);
    let mut header = csv::ByteRecord::new();
    if !reader
        .read_byte_record(&mut header)
        .context("cannot read the CSV header")?
    {
        let layout = Layout::Csv {
            column: 0,
            names: Vec::new(),
        };
        return Ok((layout, Source::Csv(reader)));
    }
    let names: Vec<Vec<u8>> = header.iter().map(<[u8]>::to_vec).collect();
    let names_text: Vec<String> = names
        .iter()
        .map(|n| String::from_utf8_lossy(n).trim().to_owned())
        .collect();
    let position = |wanted: &str| {
        names_text.iter().position(|n| n == wanted).or_else(|| {
            names_text
                .iter()
                .position(|n| n.eq_ignore_ascii_case(wanted))
        })
    };
    let column = match &options.column {
        Some(name) => position(name),
        None => ADDRESS_NAMES.iter().find_map(|name| position(name)),
    };
    let Some(column) = column else {
        let asked = options.column.as_deref().map_or_else(
            || format!("none of {}", ADDRESS_NAMES.join(", ")),
            |c| format!("no column {c:?}"),
        );
        bail!(
            "the CSV header ({}) has {asked}; name the address column with --column",
            names_text.join(",")
        );
    };
    Ok((Layout::Csv { column, names }, Source::Csv(reader)))
}

/// The closing line on standard error.
fn summary(c: &Counts, elapsed: Duration, load: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        c.lines as f64 / secs
    } else {
        0.0
    };
    format!(
        "ipintel enrich: {} lines, {} enriched, {} invalid addresses, {} without an address, \
         {} unparsable; {:.3} s, {:.0} lines/s (data loaded in {:.2} s)",
        c.lines,
        c.enriched,
        c.invalid,
        c.missing,
        c.unparsable,
        secs,
        rate,
        load.as_secs_f64()
    )
}
