//! Threads: one reads the input in batches, one per core enriches them,
//! and the calling thread writes the results in input order.
//!
//! ```text
//! reader --batches--> worker 1 --results--> writer (reorders by batch
//!                \--> worker 2 ----/                number, writes stdout)
//! ```
//!
//! Both channels are bounded, so memory stays at a few batches per
//! thread whatever the input size. When standard output closes (a broken
//! pipe, as behind `head`), the writer returns at once; the other threads
//! end on their next send, or with the process.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::Context;
use csv::ByteRecord;
use indicatif::{ProgressBar, ProgressStyle};
use ipintel_core::Snapshot;

use super::intel::IntelCache;
use super::records::{Counts, Job};

/// Bytes of input per batch of lines.
const CHUNK: usize = 1 << 20;

/// CSV rows per batch.
const ROWS: usize = 8192;

/// A unit of input.
enum Batch {
    Lines {
        seq: u64,
        bytes: Vec<u8>,
    },
    Rows {
        seq: u64,
        rows: Vec<ByteRecord>,
        bytes: u64,
    },
}

/// A unit of output.
struct Done {
    seq: u64,
    out: Vec<u8>,
    counts: Counts,
    input_bytes: u64,
}

/// Where the input comes from, already positioned at its first byte.
pub enum Source {
    /// Line-oriented input.
    Lines(Box<dyn Read + Send>),
    /// CSV input, its header already read.
    Csv(csv::Reader<Box<dyn Read + Send>>),
}

/// How the run ended.
#[derive(Debug)]
pub enum Ended {
    /// All input was read and written.
    Done(Counts),
    /// Standard output closed before the end.
    Closed,
}

/// Runs the pipeline to the end of the input.
pub fn run(
    snapshot: Arc<Snapshot>,
    job: Arc<Job>,
    source: Source,
    progress: Option<ProgressBar>,
) -> anyhow::Result<Ended> {
    let workers = thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let (batch_tx, batch_rx) = sync_channel::<Batch>(workers * 2);
    let (done_tx, done_rx) = sync_channel::<Done>(workers * 2);
    // Written output buffers go back to the workers: fresh pages cost a
    // fault and a clearing each, reused ones nothing.
    let (spare_tx, spare_rx) = sync_channel::<Vec<u8>>(workers * 4);
    let spare_rx = Arc::new(Mutex::new(spare_rx));
    let reader = thread::Builder::new()
        .name("enrich-read".into())
        .spawn(move || read(source, &batch_tx))
        .context("cannot start the reader thread")?;
    let batch_rx = Arc::new(Mutex::new(batch_rx));
    for i in 0..workers {
        let (snapshot, job, rx, tx, spare) = (
            Arc::clone(&snapshot),
            Arc::clone(&job),
            Arc::clone(&batch_rx),
            done_tx.clone(),
            Arc::clone(&spare_rx),
        );
        thread::Builder::new()
            .name(format!("enrich-{i}"))
            .spawn(move || work(&snapshot, &job, &rx, &tx, &spare))
            .context("cannot start a worker thread")?;
    }
    drop(done_tx);

    let mut stdout = io::stdout().lock();
    if job.output == super::OutputFormat::Csv {
        if let Err(err) = stdout.write_all(&job.csv_header()) {
            return closed_or(err);
        }
    }
    let written = write(&mut stdout, &done_rx, &spare_tx, progress.as_ref()).and_then(|counts| {
        stdout.flush()?;
        Ok(counts)
    });
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    let counts = match written {
        Ok(counts) => counts,
        Err(err) => return closed_or(err),
    };
    match reader.join() {
        Ok(result) => result.context("cannot read the input")?,
        Err(panic) => std::panic::resume_unwind(panic),
    }
    Ok(Ended::Done(counts))
}

/// A broken pipe ends the run quietly; any other write error fails it.
fn closed_or(err: io::Error) -> anyhow::Result<Ended> {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Ok(Ended::Closed)
    } else {
        Err(anyhow::Error::new(err).context("cannot write the output"))
    }
}

/// Writes results in batch order; returns the summed counts.
fn write(
    out: &mut impl Write,
    done: &Receiver<Done>,
    spare: &SyncSender<Vec<u8>>,
    progress: Option<&ProgressBar>,
) -> io::Result<Counts> {
    let mut counts = Counts::default();
    let mut waiting: BTreeMap<u64, Done> = BTreeMap::new();
    let mut next = 0u64;
    for result in done {
        waiting.insert(result.seq, result);
        while let Some(mut ready) = waiting.remove(&next) {
            out.write_all(&ready.out)?;
            ready.out.clear();
            // A full pool just drops the buffer.
            let _ = spare.try_send(std::mem::take(&mut ready.out));
            counts.add(&ready.counts);
            if let Some(bar) = progress {
                bar.inc(ready.input_bytes);
            }
            next += 1;
        }
    }
    Ok(counts)
}

fn work(
    snapshot: &Snapshot,
    job: &Job,
    batches: &Mutex<Receiver<Batch>>,
    done: &SyncSender<Done>,
    spare: &Mutex<Receiver<Vec<u8>>>,
) {
    let mut cache = IntelCache::new(snapshot, job.output);
    loop {
        // The lock is held only while waiting for the next batch.
        let batch = match batches.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(batch) = batch else { return };
        let result = match batch {
            Batch::Lines { seq, bytes } => {
                // JSON output runs at three to four times the input's size.
                let mut out = buffer(spare, bytes.len() * 4);
                let counts = job.lines(&mut cache, &bytes, &mut out);
                Done {
                    seq,
                    out,
                    counts,
                    input_bytes: bytes.len() as u64,
                }
            }
            Batch::Rows { seq, rows, bytes } => {
                let mut out = buffer(spare, bytes as usize * 4);
                let counts = job.rows(&mut cache, &rows, &mut out);
                Done {
                    seq,
                    out,
                    counts,
                    input_bytes: bytes,
                }
            }
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// An empty buffer of at least `capacity` bytes, reused when one is spare.
fn buffer(spare: &Mutex<Receiver<Vec<u8>>>, capacity: usize) -> Vec<u8> {
    let reused = spare.lock().ok().and_then(|rx| rx.try_recv().ok());
    let mut out = reused.unwrap_or_default();
    out.reserve(capacity);
    out
}

/// Reads the whole input into batches. A closed channel (the writer has
/// stopped) ends it without error.
fn read(source: Source, batches: &SyncSender<Batch>) -> anyhow::Result<()> {
    match source {
        Source::Lines(input) => read_lines(input, batches)?,
        Source::Csv(reader) => read_rows(reader, batches)?,
    }
    Ok(())
}

fn read_lines(mut input: impl Read, batches: &SyncSender<Batch>) -> io::Result<()> {
    let mut carry: Vec<u8> = Vec::new();
    let mut seq = 0;
    loop {
        let mut buf = Vec::with_capacity(carry.len() + CHUNK);
        buf.append(&mut carry);
        let at_end = fill(&mut input, &mut buf, CHUNK)?;
        if !at_end {
            // Keep the unfinished last line for the next batch; a line
            // longer than a batch just makes this one read on.
            match memchr::memrchr(b'\n', &buf) {
                Some(end) => carry.extend_from_slice(&buf[end + 1..]),
                None => {
                    carry = buf;
                    continue;
                }
            }
            buf.truncate(buf.len() - carry.len());
        }
        if !buf.is_empty() {
            if batches.send(Batch::Lines { seq, bytes: buf }).is_err() {
                return Ok(());
            }
            seq += 1;
        }
        if at_end {
            return Ok(());
        }
    }
}

/// Appends up to `more` bytes, reading until the buffer is full, the
/// input ends, or a read brings a line break: a file fills whole batches,
/// while a slow stream (`tail -f`) is enriched as its lines come. True at
/// the end of the input.
pub fn fill(input: &mut impl Read, buf: &mut Vec<u8>, more: usize) -> io::Result<bool> {
    let start = buf.len();
    buf.resize(start + more, 0);
    let mut filled = start;
    let mut at_end = false;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => {
                at_end = true;
                break;
            }
            Ok(n) => {
                filled += n;
                if memchr::memchr(b'\n', &buf[filled - n..filled]).is_some() {
                    break;
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    buf.truncate(filled);
    Ok(at_end)
}

fn read_rows(
    mut reader: csv::Reader<Box<dyn Read + Send>>,
    batches: &SyncSender<Batch>,
) -> csv::Result<()> {
    let mut position = reader.position().byte();
    let mut seq = 0;
    loop {
        let mut rows = Vec::with_capacity(ROWS);
        let mut at_end = false;
        while rows.len() < ROWS {
            let mut row = ByteRecord::new();
            if !reader.read_byte_record(&mut row)? {
                at_end = true;
                break;
            }
            rows.push(row);
        }
        let now = reader.position().byte();
        let bytes = now - position;
        position = now;
        if !rows.is_empty() {
            if batches.send(Batch::Rows { seq, rows, bytes }).is_err() {
                return Ok(());
            }
            seq += 1;
        }
        if at_end {
            return Ok(());
        }
    }
}

/// A progress bar over `total` input bytes, drawn on standard error.
pub fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{bar:40} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
