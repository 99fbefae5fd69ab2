//! Turning one batch of input (lines or CSV rows) into output bytes.

use csv::ByteRecord;

use super::combined::{self, Entry};
use super::intel::{IntelCache, CSV_COLUMNS};
use super::jsonl::{self, MEMBER};
use super::text::{csv_field, json_str, json_str_or_null};
use super::{OutputFormat, Unparsable};

/// How input records are laid out.
#[derive(Debug, Clone)]
pub enum Layout {
    /// nginx / Apache combined (or common) log lines.
    Combined,
    /// JSON objects, one per line, the address in a top-level member.
    Jsonl {
        /// The member's name.
        field: String,
    },
    /// CSV with a header row, the address in one column.
    Csv {
        /// Index of the address column.
        column: usize,
        /// The header's names.
        names: Vec<Vec<u8>>,
    },
}

impl Layout {
    /// The original columns of CSV output.
    pub fn columns(&self) -> Vec<Vec<u8>> {
        match self {
            Layout::Combined => combined::FIELDS
                .iter()
                .map(|f| f.as_bytes().to_vec())
                .collect(),
            Layout::Jsonl { .. } => vec![b"record".to_vec()],
            Layout::Csv { names, .. } => names.clone(),
        }
    }
}

/// What happened to the lines of a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Lines (or CSV rows) read, blank lines aside.
    pub lines: u64,
    /// Lines whose address was looked up.
    pub enriched: u64,
    /// Lines whose address field held something that is not an address.
    pub invalid: u64,
    /// Lines in the format but without an address (JSON member absent,
    /// CSV cell empty).
    pub missing: u64,
    /// Lines not in the format.
    pub unparsable: u64,
}

impl Counts {
    /// Adds another batch's counts.
    pub fn add(&mut self, other: &Counts) {
        self.lines += other.lines;
        self.enriched += other.enriched;
        self.invalid += other.invalid;
        self.missing += other.missing;
        self.unparsable += other.unparsable;
    }
}

/// Everything a worker needs to turn input into output.
#[derive(Debug)]
pub struct Job {
    /// Input layout.
    pub layout: Layout,
    /// Output format.
    pub output: OutputFormat,
    /// What to do with lines not in the format.
    pub unparsable: Unparsable,
    /// `"name":` per CSV column, for JSON output of CSV input.
    keys: Vec<Vec<u8>>,
    /// Number of original columns in CSV output.
    width: usize,
}

/// The address lookup result for one line.
enum Found<'c> {
    Intel(&'c [u8]),
    Invalid,
    Missing,
}

impl Job {
    /// A job for `layout`.
    pub fn new(layout: Layout, output: OutputFormat, unparsable: Unparsable) -> Job {
        let columns = layout.columns();
        let keys = columns
            .iter()
            .map(|name| {
                let mut key = Vec::with_capacity(name.len() + 3);
                json_str(&mut key, name);
                key.push(b':');
                key
            })
            .collect();
        Job {
            width: columns.len(),
            layout,
            output,
            unparsable,
            keys,
        }
    }

    /// The header line of CSV output.
    pub fn csv_header(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, name) in self.layout.columns().iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            csv_field(&mut out, name);
        }
        for name in CSV_COLUMNS {
            out.push(b',');
            out.extend_from_slice(name.as_bytes());
        }
        out.push(b'\n');
        out
    }

    /// Processes whole lines (`chunk` ends at a line break or the input's
    /// end), appending to `out`.
    pub fn lines(&self, cache: &mut IntelCache<'_>, chunk: &[u8], out: &mut Vec<u8>) -> Counts {
        let mut counts = Counts::default();
        for line in chunk.split(|b| *b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            counts.lines += 1;
            match &self.layout {
                Layout::Jsonl { field } => self.json_line(cache, line, field, out, &mut counts),
                _ => self.log_line(cache, line, out, &mut counts),
            }
        }
        counts
    }

    /// Processes CSV rows, appending to `out`.
    pub fn rows(
        &self,
        cache: &mut IntelCache<'_>,
        rows: &[ByteRecord],
        out: &mut Vec<u8>,
    ) -> Counts {
        let mut counts = Counts::default();
        let Layout::Csv { column, .. } = self.layout else {
            return counts;
        };
        for row in rows {
            counts.lines += 1;
            if row.len() != self.width {
                let mut text = Vec::new();
                csv_row(&mut text, row.iter());
                self.unparsed(&text, out, &mut counts);
                continue;
            }
            let found = match row.get(column) {
                Some(addr) if !addr.is_empty() => lookup(cache, addr),
                _ => Found::Missing,
            };
            let intel = tally(found, &mut counts);
            match self.output {
                OutputFormat::Csv => {
                    csv_row(out, row.iter());
                    csv_intel(out, intel);
                }
                OutputFormat::Jsonl => {
                    out.push(b'{');
                    for (i, (key, value)) in self.keys.iter().zip(row.iter()).enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(key);
                        json_str(out, value);
                    }
                    json_intel(out, intel, !row.is_empty());
                }
            }
        }
        counts
    }

    fn log_line(
        &self,
        cache: &mut IntelCache<'_>,
        line: &[u8],
        out: &mut Vec<u8>,
        counts: &mut Counts,
    ) {
        let Some(entry) = combined::parse(line) else {
            self.unparsed(line, out, counts);
            return;
        };
        let intel = tally(lookup(cache, entry.host), counts);
        match self.output {
            OutputFormat::Jsonl => {
                json_entry(out, &entry);
                json_intel(out, intel, true);
            }
            OutputFormat::Csv => {
                csv_row(out, entry.fields().into_iter());
                csv_intel(out, intel);
            }
        }
    }

    fn json_line(
        &self,
        cache: &mut IntelCache<'_>,
        line: &[u8],
        field: &str,
        out: &mut Vec<u8>,
        counts: &mut Counts,
    ) {
        let line = line.trim_ascii();
        let Some(probe) = jsonl::probe(line, field) else {
            self.unparsed(line, out, counts);
            return;
        };
        let found = match &probe.value {
            Some(Ok(text)) => lookup(cache, text.as_bytes()),
            Some(Err(())) => Found::Invalid,
            None => Found::Missing,
        };
        let intel = tally(found, counts);
        match self.output {
            OutputFormat::Csv => {
                csv_field(out, line);
                csv_intel(out, intel);
            }
            OutputFormat::Jsonl if probe.has_member => replace_member(out, line, intel),
            OutputFormat::Jsonl => {
                // A valid object ends with its closing brace: reopen it.
                out.extend_from_slice(&line[..line.len() - 1]);
                json_intel(out, intel, probe.members > 0);
            }
        }
    }

    /// A line not in the format: skipped, or kept with its text and no
    /// intel.
    fn unparsed(&self, text: &[u8], out: &mut Vec<u8>, counts: &mut Counts) {
        counts.unparsable += 1;
        if self.unparsable == Unparsable::Skip {
            return;
        }
        match self.output {
            OutputFormat::Jsonl => {
                out.extend_from_slice(b"{\"unparsed\":");
                json_str(out, text);
                json_intel(out, None, true);
            }
            OutputFormat::Csv => {
                csv_field(out, text);
                for _ in 1..self.width {
                    out.push(b',');
                }
                csv_intel(out, None);
            }
        }
    }
}

fn lookup<'c>(cache: &'c mut IntelCache<'_>, addr: &[u8]) -> Found<'c> {
    match cache.get(addr) {
        Some(intel) => Found::Intel(intel),
        None => Found::Invalid,
    }
}

fn tally<'c>(found: Found<'c>, counts: &mut Counts) -> Option<&'c [u8]> {
    match found {
        Found::Intel(intel) => {
            counts.enriched += 1;
            Some(intel)
        }
        Found::Invalid => {
            counts.invalid += 1;
            None
        }
        Found::Missing => {
            counts.missing += 1;
            None
        }
    }
}

/// Closes an open JSON object with the `ipintel` member and a line break.
fn json_intel(out: &mut Vec<u8>, intel: Option<&[u8]>, comma: bool) {
    if comma {
        out.push(b',');
    }
    out.extend_from_slice(b"\"ipintel\":");
    out.extend_from_slice(intel.unwrap_or(b"null"));
    out.extend_from_slice(b"}\n");
}

/// Ends a CSV row with the intel columns (empty without intel).
fn csv_intel(out: &mut Vec<u8>, intel: Option<&[u8]>) {
    match intel {
        Some(columns) => out.extend_from_slice(columns),
        None => out.extend(std::iter::repeat_n(b',', CSV_COLUMNS.len())),
    }
    out.push(b'\n');
}

fn csv_row<'a>(out: &mut Vec<u8>, fields: impl Iterator<Item = &'a [u8]>) {
    for (i, field) in fields.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        csv_field(out, field);
    }
}

/// Opens a JSON object with the fields of a log line: `-` becomes null,
/// status and size are numbers.
fn json_entry(out: &mut Vec<u8>, e: &Entry<'_>) {
    out.extend_from_slice(b"{\"remote_addr\":");
    json_str(out, e.host);
    out.extend_from_slice(b",\"ident\":");
    json_str_or_null(out, e.ident);
    out.extend_from_slice(b",\"remote_user\":");
    json_str_or_null(out, e.user);
    out.extend_from_slice(b",\"time_local\":");
    json_str(out, e.time);
    out.extend_from_slice(b",\"request\":");
    json_str_or_null(out, e.request);
    out.extend_from_slice(b",\"status\":");
    json_number(out, e.status);
    out.extend_from_slice(b",\"body_bytes_sent\":");
    json_number(out, e.bytes);
    out.extend_from_slice(b",\"http_referer\":");
    json_str_or_null(out, e.referer.unwrap_or(b"-"));
    out.extend_from_slice(b",\"http_user_agent\":");
    json_str_or_null(out, e.agent.unwrap_or(b"-"));
    if !e.extra.is_empty() {
        out.extend_from_slice(b",\"extra\":");
        json_str(out, e.extra);
    }
}

/// Digits as a JSON number (a leading zero would not be one: then a
/// string), `-` as null.
fn json_number(out: &mut Vec<u8>, digits: &[u8]) {
    let number = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits.len() == 1 || digits[0] != b'0');
    if number {
        out.extend_from_slice(digits);
    } else {
        json_str_or_null(out, digits);
    }
}

/// The rare object that already has an `ipintel` member: rebuilt with
/// the member replaced (members may come out in another order).
fn replace_member(out: &mut Vec<u8>, line: &[u8], intel: Option<&[u8]>) {
    let parsed: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(line).ok();
    let value = intel
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(serde_json::Value::Null);
    let Some(mut object) = parsed else { return };
    object.insert(MEMBER.to_owned(), value);
    if serde_json::to_writer(&mut *out, &object).is_ok() {
        out.push(b'\n');
    }
}
