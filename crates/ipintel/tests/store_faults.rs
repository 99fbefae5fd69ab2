//! Two `ipintel serve` nodes lose PostgreSQL under load and get it back,
//! without a restart (issue 6, "Faults"; docs/deploy.md, "When PostgreSQL
//! is unreachable", states what this checks and the figures it printed).
//!
//! The nodes reach PostgreSQL only through a TCP proxy in this file, which
//! the test cuts in two ways: it closes every proxied connection and then
//! either refuses new ones (nothing listens: the quick failure) or accepts
//! them and never answers (a black hole: the slow one, where only the
//! pool's timeouts help). During each cut, bounded load of lookups and
//! reports runs against both nodes; the test checks that
//!
//! - no request gets a 500 or goes unanswered, and each is answered within
//!   [`ANSWER_LIMIT`];
//! - lookups by keys the nodes have seen answer 200 throughout;
//! - a report is either acknowledged (201) or refused with 503
//!   `store_unavailable` and `Retry-After`, and every acknowledged report,
//!   before, during or after a cut, is in the `reports` table afterwards;
//! - a key the nodes have not seen is refused with 503 `store_unavailable`
//!   (not 401: the key may well exist);
//! - a report whose insertion is stuck in the database is refused within
//!   [`ANSWER_LIMIT`] too (the report desk gives up after 3 s);
//! - after the proxy is restored, reports are accepted again on both nodes
//!   within [`RECOVERY_LIMIT`], and every lookup counted while cut reaches
//!   `usage_daily` within [`FLUSH_LIMIT`].
//!
//! PostgreSQL is the test server of `support::postgres` (CI fails without
//! it; elsewhere the test says it skips). Everything runs on loopback.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::postgres::Schema;
use support::server::{create_key_with_id, parse_reply, Reply, SETTINGS};
use support::tiny_data_dir;

/// How long the load runs while the store is cut: longer than the pool's
/// acquire timeout, so that requests that wait for a connection time out
/// inside the run.
const CUT_LOAD: Duration = Duration::from_secs(6);
/// How long the load runs before the first cut and after the last restore.
const CALM_LOAD: Duration = Duration::from_secs(2);
/// At most this many requests in one load run (all threads together).
const MAX_REQUESTS_PER_RUN: usize = 1_500;
/// Each load thread waits this long between its requests.
const PACE: Duration = Duration::from_millis(10);
/// The longest any request may take, cut or not: the longest limit in the
/// store path (3 s for a report's insertion or an unseen key's read; 2 s
/// for a connection) with a margin for six processes on two loaded cores.
const ANSWER_LIMIT: Duration = Duration::from_secs(6);
/// The client gives up on an answer after this long (a failure).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(20);
/// After the restore, reports are accepted again on every node within this.
const RECOVERY_LIMIT: Duration = Duration::from_secs(5);
/// After the restore, every counted lookup is in `usage_daily` within this.
const FLUSH_LIMIT: Duration = Duration::from_secs(10);
/// Node logs: no access lines, which nobody reads here.
const NODE_LOG_FILTER: &str = "info,ipintel::access=warn";

/// Locks a mutex; its data stays usable if a holder panicked (the test
/// fails on that panic anyway).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

// === The proxy between the nodes and PostgreSQL ===

/// How the proxy cuts the store off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// Open connections are closed; nothing listens, so a new connection
    /// is refused at once.
    Refuse,
    /// Open connections are closed; a new connection is accepted and then
    /// never answered.
    BlackHole,
    /// A network partition that heals: open connections stay open but
    /// carry nothing until the restore, when what was sent meanwhile is
    /// delivered; new connections are black-holed.
    Stall,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Open,
    Cut(Cut),
}

struct ProxyState {
    mode: Mode,
    /// `None` while refusing.
    listener: Option<TcpListener>,
    /// Both ends of every proxied connection, to shut them at a cut.
    live: Vec<TcpStream>,
    /// Connections accepted while black-holed, held without a word.
    held: Vec<TcpStream>,
}

/// A TCP proxy on loopback in front of `upstream` that the test can cut
/// and restore.
struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<ProxyState>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(ProxyState {
            mode: Mode::Open,
            listener: Some(listener),
            live: Vec::new(),
            held: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || accept_loop(&state, &stop, upstream))
        };
        Proxy {
            addr,
            state,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Closes every proxied connection; new ones are treated as `how` says
    /// until [`Proxy::restore`].
    fn cut(&self, how: Cut) {
        let mut state = lock(&self.state);
        state.mode = Mode::Cut(how);
        if how == Cut::Refuse {
            state.listener = None;
        }
        if how != Cut::Stall {
            for stream in state.live.drain(..) {
                let _ = stream.shutdown(Shutdown::Both);
            }
        }
    }

    /// Proxies new connections again (on the same port); connections held
    /// in the black hole are closed.
    fn restore(&self) {
        let mut state = lock(&self.state);
        if state.listener.is_none() {
            // The standard library sets SO_REUSEADDR: the port's closed
            // connections do not stop the bind.
            let listener = TcpListener::bind(self.addr).unwrap_or_else(|err| {
                panic!("the proxy cannot listen on {} again: {err}", self.addr)
            });
            listener.set_nonblocking(true).unwrap();
            state.listener = Some(listener);
        }
        for stream in state.held.drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
        state.mode = Mode::Open;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        state.listener = None;
        for stream in state.live.drain(..).chain(state.held.drain(..)) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(state: &Arc<Mutex<ProxyState>>, stop: &AtomicBool, upstream: SocketAddr) {
    while !stop.load(Ordering::Acquire) {
        let accepted = lock(state).listener.as_ref().map(TcpListener::accept);
        match accepted {
            Some(Ok((client, _))) => admit(state, client, upstream),
            Some(Err(err)) if err.kind() != std::io::ErrorKind::WouldBlock => {
                eprintln!("proxy: accept failed: {err}");
                std::thread::sleep(Duration::from_millis(20));
            }
            _ => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Proxies, holds or drops a new connection, as the mode says.
fn admit(state: &Arc<Mutex<ProxyState>>, client: TcpStream, upstream: SocketAddr) {
    let mut guard = lock(state);
    match guard.mode {
        Mode::Cut(Cut::BlackHole | Cut::Stall) => guard.held.push(client),
        // Accepted just before the listener closed: closed unanswered.
        Mode::Cut(Cut::Refuse) => drop(client),
        Mode::Open => {
            drop(guard);
            let state = Arc::clone(state);
            std::thread::spawn(move || relay(&state, client, upstream));
        }
    }
}

/// Connects `client` to `upstream` and copies bytes both ways until
/// either side closes or a cut shuts both.
fn relay(state: &Arc<Mutex<ProxyState>>, client: TcpStream, upstream: SocketAddr) {
    client.set_nonblocking(false).unwrap();
    let Ok(server) = TcpStream::connect_timeout(&upstream, Duration::from_secs(2)) else {
        return;
    };
    {
        let mut state = lock(state);
        if state.mode != Mode::Open {
            return;
        }
        state.live.push(client.try_clone().unwrap());
        state.live.push(server.try_clone().unwrap());
    }
    let (client_in, server_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let back = {
        let state = Arc::clone(state);
        std::thread::spawn(move || pump(&state, server, client))
    };
    pump(state, client_in, server_out);
    let _ = back.join();
}

/// Copies `from` to `to` (holding what it read while the proxy is
/// stalled) until `from` ends or fails, then shuts both.
fn pump(state: &Mutex<ProxyState>, mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0_u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                while lock(state).mode == Mode::Cut(Cut::Stall) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

// === The nodes ===

/// An `ipintel serve` process whose log is read into memory as it comes
/// (a load run makes more log than a pipe holds).
struct Node {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Node {
    fn start(data: &Path, db: &str) -> Node {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ipintel"));
        for name in SETTINGS {
            cmd.env_remove(name);
        }
        let mut child = cmd
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(["--db", db])
            .env("IPINTEL_LOG_FORMAT", "json")
            .env("RUST_LOG", NODE_LOG_FILTER)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (listening, addr) = mpsc::channel();
        let reader = {
            let log = Arc::clone(&log);
            std::thread::spawn(move || read_log(stderr, &log, &listening))
        };
        let addr = addr.recv_timeout(Duration::from_secs(60));
        let mut node = Node {
            child,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            log,
            reader: Some(reader),
        };
        match addr {
            Ok(addr) => node.addr = addr,
            Err(_) => panic!("the node did not listen: {}", node.log_text()),
        }
        node
    }

    fn log_text(&self) -> String {
        lock(&self.log).join("")
    }

    /// Log lines whose message contains `text`.
    fn logged(&self, text: &str) -> usize {
        lock(&self.log)
            .iter()
            .filter(|line| {
                serde_json::from_str::<Value>(line).is_ok_and(|event| {
                    event["message"]
                        .as_str()
                        .is_some_and(|message| message.contains(text))
                })
            })
            .count()
    }

    /// Sends SIGTERM, waits (30 s at most) for a clean exit; returns the log.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let exit = loop {
            if let Some(exit) = self.child.try_wait().unwrap() {
                break exit;
            }
            assert!(Instant::now() < deadline, "no exit: {}", self.log_text());
            std::thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        let log = self.log_text();
        assert_eq!(exit.code(), Some(0), "{log}");
        log
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Keeps every line of the node's log; sends the address of its
/// "listening" line.
fn read_log(
    stderr: std::process::ChildStderr,
    log: &Mutex<Vec<String>>,
    listening: &mpsc::Sender<SocketAddr>,
) {
    let mut stderr = BufReader::new(stderr);
    let mut line = String::new();
    while stderr.read_line(&mut line).is_ok_and(|n| n > 0) {
        if let Ok(event) = serde_json::from_str::<Value>(&line) {
            if event["message"] == "listening" {
                if let Some(addr) = event["addr"].as_str().and_then(|a| a.parse().ok()) {
                    let _ = listening.send(addr);
                }
            }
        }
        lock(log).push(std::mem::take(&mut line));
    }
}

/// A key on the enterprise plan made with the CLI: its id and full text.
fn create_key(db: &Path) -> (String, String) {
    create_key_with_id(db, &["--plan", "enterprise"])
}

// === HTTP ===

/// One request on a fresh connection; `Err` when no whole answer came.
fn send(
    to: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    form: Option<&str>,
) -> Result<Reply, String> {
    let mut stream =
        TcpStream::connect_timeout(&to, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(CLIENT_TIMEOUT))
        .map_err(|e| e.to_string())?;
    let body = form.unwrap_or("");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if form.is_some() {
        head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    if let Some(key) = key {
        head.push_str(&format!("X-API-Key: {key}\r\n"));
    }
    stream
        .write_all(format!("{head}\r\n{body}").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .map_err(|e| format!("{e} after {} bytes", raw.len()))?;
    parse_reply(&raw).ok_or_else(|| format!("not an HTTP response: {raw:?}"))
}

fn lookup(node: SocketAddr, key: &str) -> Result<Reply, String> {
    send(node, "GET", "/v1/ip/8.8.8.8", Some(key), None)
}

/// Files a report of `ip` (category 22, high severity).
fn report(node: SocketAddr, key: &str, ip: Ipv4Addr) -> Result<Reply, String> {
    let form = format!("ip={ip}&category=22&severity=high");
    send(node, "POST", "/v1/ip/report", Some(key), Some(&form))
}

// === Load ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lookup,
    Report,
}

/// One request of a load run.
#[derive(Debug)]
struct Outcome {
    kind: Kind,
    /// Index of the key in the run's keys.
    key: usize,
    /// From the start of the run until the request was sent.
    sent_at: Duration,
    took: Duration,
    answer: Result<Reply, String>,
}

impl Outcome {
    /// From the start of the run until the answer.
    fn answered_at(&self) -> Duration {
        self.sent_at + self.took
    }
}

/// Hands out report addresses, each once per test: 11.0.0.1, 11.0.0.2, ...
/// (public space, so the reports are accepted; never contacted).
struct Addresses(AtomicU32);

impl Addresses {
    fn next(&self) -> Ipv4Addr {
        let n = self.0.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(n < 1 << 24, "out of report addresses");
        Ipv4Addr::from((11 << 24) | n)
    }
}

/// Runs load on every node for `length` (and at most
/// [`MAX_REQUESTS_PER_RUN`] requests): per node one thread of lookups,
/// alternating between the keys, and one of reports by that node's key.
fn run_load(
    nodes: &[SocketAddr],
    keys: &[(String, String)],
    length: Duration,
    addresses: &Addresses,
) -> Vec<Outcome> {
    let started = Instant::now();
    let budget = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (n, node) in nodes.iter().enumerate() {
            for kind in [Kind::Lookup, Kind::Report] {
                let (budget, outcomes) = (&budget, &outcomes);
                scope.spawn(move || {
                    let mut sent = 0_usize;
                    while started.elapsed() < length
                        && budget.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS_PER_RUN
                    {
                        let key = match kind {
                            Kind::Lookup => (n + sent) % keys.len(),
                            Kind::Report => n % keys.len(),
                        };
                        let text = &keys[key].1;
                        let sent_at = started.elapsed();
                        let answer = match kind {
                            Kind::Lookup => lookup(*node, text),
                            Kind::Report => report(*node, text, addresses.next()),
                        };
                        let took = started.elapsed() - sent_at;
                        lock(outcomes).push(Outcome {
                            kind,
                            key,
                            sent_at,
                            took,
                            answer,
                        });
                        sent += 1;
                        std::thread::sleep(PACE);
                    }
                });
            }
        }
    });
    outcomes.into_inner().unwrap()
}

/// What the test has seen acknowledged and counted, over all runs.
#[derive(Debug, Default)]
struct Ledger {
    /// Ids of reports answered 201.
    acknowledged: BTreeSet<i64>,
    /// Reports answered 503.
    refused: usize,
    /// Lookups answered 200, per key id.
    lookups: HashMap<String, u64>,
}

impl Ledger {
    fn note_lookup(&mut self, key_id: &str) {
        *self.lookups.entry(key_id.to_owned()).or_default() += 1;
    }

    /// Notes a 201 report; its receipt must carry the id.
    fn note_report(&mut self, reply: &Reply) {
        let id = reply.try_json().and_then(|body| body["id"].as_i64());
        let id = id.unwrap_or_else(|| panic!("a 201 without a report id: {reply:?}"));
        assert!(
            self.acknowledged.insert(id),
            "report id {id} acknowledged twice"
        );
    }
}

/// Figures of one load run.
#[derive(Debug, Default)]
struct RunFigures {
    lookups: usize,
    reports_accepted: usize,
    reports_refused: usize,
    /// From the start of the run to the first refused report's answer.
    first_refusal: Option<Duration>,
    slowest: Duration,
}

/// Checks every answer of a run and enters it in `ledger`. Lookups must be
/// 200; reports 201, or (only if `cut`) 503 `store_unavailable` with
/// `Retry-After`.
fn check_run(
    what: &str,
    outcomes: &[Outcome],
    keys: &[(String, String)],
    cut: bool,
    ledger: &mut Ledger,
) -> RunFigures {
    let mut figures = RunFigures::default();
    for outcome in outcomes {
        let reply = outcome
            .answer
            .as_ref()
            .unwrap_or_else(|err| panic!("{what}: no answer: {err} ({outcome:?})"));
        assert!(
            reply.status < 500 || reply.status == 503,
            "{what}: a {} answer: {outcome:?}",
            reply.status
        );
        assert!(
            outcome.took <= ANSWER_LIMIT,
            "{what}: an answer took {:?}: {outcome:?}",
            outcome.took
        );
        figures.slowest = figures.slowest.max(outcome.took);
        match (outcome.kind, reply.status) {
            (Kind::Lookup, 200) => {
                figures.lookups += 1;
                ledger.note_lookup(&keys[outcome.key].0);
            }
            (Kind::Report, 201) => {
                figures.reports_accepted += 1;
                ledger.note_report(reply);
            }
            (Kind::Report, 503) if cut => {
                check_unavailable(what, reply);
                figures.reports_refused += 1;
                ledger.refused += 1;
                let at = outcome.answered_at();
                figures.first_refusal = Some(figures.first_refusal.map_or(at, |t| t.min(at)));
            }
            _ => panic!("{what}: unexpected answer: {outcome:?}"),
        }
    }
    assert!(figures.lookups > 0, "{what}: no lookup was answered");
    figures
}

/// A 503 that says the store is unavailable and when to try again.
fn check_unavailable(what: &str, reply: &Reply) {
    assert_eq!(reply.status, 503, "{what}: {reply:?}");
    assert_eq!(
        reply.code().as_deref(),
        Some("store_unavailable"),
        "{what}: {reply:?}"
    );
    let retry = reply.retry_after();
    assert!(
        retry.is_some_and(|secs| secs >= 1),
        "{what}: a 503 without a Retry-After: {reply:?}"
    );
}

/// Holds, from a connection of the test's own, the per-key lock that the
/// PostgreSQL store takes around a report insertion (namespace "ipin",
/// then the first four bytes of the SHA-256 of the key id), for `length`:
/// the key's reports wait as if the database were stuck. Returns once the
/// lock is held; the thread ends when it is released.
fn hold_report_lock(schema: &Schema, key_id: &str, length: Duration) -> JoinHandle<()> {
    use sha2::{Digest, Sha256};
    const LOCK_NAMESPACE: i32 = 0x6970_696e;

    let digest = Sha256::digest(key_id.as_bytes());
    let lock_key = i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    let options = schema.connect_options();
    let (held, is_held) = mpsc::channel();
    let holder = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
            sqlx::query("SELECT pg_advisory_lock($1, $2)")
                .bind(LOCK_NAMESPACE)
                .bind(lock_key)
                .execute(&mut conn)
                .await
                .unwrap();
            held.send(()).unwrap();
            tokio::time::sleep(length).await;
            // Closing the session releases the lock.
            conn.close().await.unwrap();
        });
    });
    is_held.recv_timeout(Duration::from_secs(10)).unwrap();
    holder
}

// === The scenario ===

/// What a node answers, while the store is cut, outside the load.
#[derive(Debug)]
struct Probes {
    unseen_key: Reply,
    unseen_took: Duration,
    healthz: u16,
    readyz: u16,
    usage: Reply,
}

/// Asks `node`, while cut, what the load does not: a key it has never
/// seen, the health checks and `/v1/usage`.
fn probe(node: SocketAddr, unseen: &str, seen: &str) -> Probes {
    let started = Instant::now();
    let unseen_key = lookup(node, unseen).unwrap();
    let unseen_took = started.elapsed();
    let status = |path: &str| send(node, "GET", path, None, None).unwrap().status;
    Probes {
        unseen_key,
        unseen_took,
        healthz: status("/healthz"),
        readyz: status("/readyz"),
        usage: send(node, "GET", "/v1/usage", Some(seen), None).unwrap(),
    }
}

/// Files reports on `node` until one is accepted; returns how long that
/// took from the call. Refusals meanwhile must be proper 503s.
fn until_accepted(
    node: SocketAddr,
    key: &str,
    addresses: &Addresses,
    ledger: &mut Ledger,
) -> Duration {
    let started = Instant::now();
    loop {
        let reply = report(node, key, addresses.next()).unwrap();
        if reply.status == 201 {
            ledger.note_report(&reply);
            return started.elapsed();
        }
        check_unavailable("after the restore", &reply);
        ledger.refused += 1;
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "reports still refused {RECOVERY_LIMIT:?} after the restore: {reply:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two nodes, the proxy and the keys. (Fields drop in order: the nodes
/// before the proxy they use, the schema last.)
struct Bench {
    nodes: Vec<Node>,
    proxy: Proxy,
    /// Keys both nodes have used: (id, key text).
    keys: Vec<(String, String)>,
    schema: Schema,
    _data: tempfile::TempDir,
}

impl Bench {
    fn start() -> Option<Bench> {
        let schema = Schema::create("faults")?;
        let data = tempfile::tempdir().unwrap();
        tiny_data_dir(data.path());
        let proxy = Proxy::start(schema.server_addr());
        let db = schema.db_through(proxy.addr);
        // The first node migrates the schema; the second finds it done.
        let first = Node::start(data.path(), &db);
        let nodes = vec![first, Node::start(data.path(), &db)];
        let keys = vec![create_key(schema.db()), create_key(schema.db())];
        Some(Bench {
            nodes,
            proxy,
            keys,
            schema,
            _data: data,
        })
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|node| node.addr).collect()
    }

    /// Cuts the proxy `how`, runs load and probes, restores, and waits
    /// for reports to be accepted again on every node.
    fn cut_and_restore(&self, how: Cut, addresses: &Addresses, ledger: &mut Ledger) {
        let nodes = self.addrs();
        let (_, unseen) = create_key(self.schema.db());
        let seen = &self.keys[0].1;

        self.proxy.cut(how);
        let (outcomes, probes) = std::thread::scope(|scope| {
            let probes = scope.spawn(|| {
                std::thread::sleep(Duration::from_millis(500));
                probe(nodes[1], &unseen, seen)
            });
            let outcomes = run_load(&nodes, &self.keys, CUT_LOAD, addresses);
            (outcomes, probes.join().unwrap())
        });
        let what = format!("cut ({how:?})");
        let figures = check_run(&what, &outcomes, &self.keys, true, ledger);
        eprintln!("{what}: {figures:?}");
        assert!(
            figures.reports_refused > 0,
            "{what}: no report was refused; was the store cut?"
        );
        check_probes(&what, &probes);

        let restored = Instant::now();
        self.proxy.restore();
        for node in &nodes {
            let took = until_accepted(*node, seen, addresses, ledger);
            eprintln!("{what}: reports accepted again on {node} {took:?} after the restore");
        }
        eprintln!(
            "{what}: both nodes accept reports {:?} after the restore",
            restored.elapsed()
        );
        // The key the nodes could not read while cut now works.
        let reply = lookup(nodes[1], &unseen).unwrap();
        assert_eq!(
            reply.status, 200,
            "{what}: an unseen key after the restore: {reply:?}"
        );
    }

    /// Waits until `usage_daily` holds every lookup the ledger counted.
    fn wait_for_usage(&self, ledger: &Ledger) -> Duration {
        let started = Instant::now();
        for (id, &counted) in &ledger.lookups {
            let sql = format!(
                "SELECT COALESCE(SUM(count), 0)::BIGINT FROM usage_daily WHERE key_id = '{id}'"
            );
            loop {
                let stored = u64::try_from(self.schema.bigint(&sql)).unwrap();
                assert!(
                    stored <= counted,
                    "key {id}: {stored} lookups stored, {counted} answered 200"
                );
                if stored == counted {
                    break;
                }
                assert!(
                    started.elapsed() < FLUSH_LIMIT,
                    "key {id}: {stored} of {counted} lookups stored after {FLUSH_LIMIT:?}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        started.elapsed()
    }
}

fn check_probes(what: &str, probes: &Probes) {
    eprintln!("{what}: probes {probes:?}");
    check_unavailable(&format!("{what}: unseen key"), &probes.unseen_key);
    assert!(
        probes.unseen_took <= ANSWER_LIMIT,
        "{what}: the unseen key took {:?}",
        probes.unseen_took
    );
    assert_eq!(probes.healthz, 200, "{what}: /healthz");
    // Readiness is about the IP data, which the node still serves.
    assert_eq!(probes.readyz, 200, "{what}: /readyz");
    // Usage is read from the store: refused, never a 500.
    check_unavailable(&format!("{what}: /v1/usage"), &probes.usage);
}

#[test]
fn nodes_cut_off_from_postgres_lose_no_report_and_recover_without_restart() {
    let started = Instant::now();
    let Some(bench) = Bench::start() else {
        return;
    };
    let nodes = bench.addrs();
    let addresses = Addresses(AtomicU32::new(0));
    let mut ledger = Ledger::default();

    // Before: both nodes read both keys and accept reports.
    let outcomes = run_load(&nodes, &bench.keys, CALM_LOAD, &addresses);
    let figures = check_run("before", &outcomes, &bench.keys, false, &mut ledger);
    eprintln!("before: {figures:?}");

    for how in [Cut::Refuse, Cut::BlackHole, Cut::Stall] {
        bench.cut_and_restore(how, &addresses, &mut ledger);
    }

    // A report whose insertion is stuck mid-transaction (here on the
    // key's lock; a connection that stops answering is the same to the
    // node) is refused once the desk gives up, not left hanging.
    let (stuck_id, stuck_key) = &bench.keys[1];
    let holder = hold_report_lock(&bench.schema, stuck_id, Duration::from_secs(5));
    let sent = Instant::now();
    let reply = report(nodes[0], stuck_key, addresses.next()).unwrap();
    let took = sent.elapsed();
    check_unavailable("a stuck report", &reply);
    ledger.refused += 1;
    assert!(
        took <= ANSWER_LIMIT,
        "a stuck report was answered after {took:?}"
    );
    assert!(
        took >= Duration::from_millis(2_500),
        "a stuck report was refused after {took:?}, before the desk's 3 s limit"
    );
    eprintln!("a report stuck in the database was refused after {took:?}");
    holder.join().unwrap();

    // After: everything works as before.
    let outcomes = run_load(&nodes, &bench.keys, CALM_LOAD, &addresses);
    let figures = check_run("after", &outcomes, &bench.keys, false, &mut ledger);
    eprintln!("after: {figures:?}");

    // Every lookup counted (before, during and after the cuts) is stored.
    let took = bench.wait_for_usage(&ledger);
    eprintln!(
        "usage: {:?} lookups in usage_daily {took:?} after the last load",
        ledger.lookups
    );

    // Every acknowledged report is stored; a refused one may be too (its
    // commit can outrun the cut of the connection that sent it).
    let stored: BTreeSet<i64> = bench
        .schema
        .bigints("SELECT id FROM reports")
        .into_iter()
        .collect();
    let lost: Vec<&i64> = ledger.acknowledged.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged reports not stored: {lost:?}");
    let extra = stored.len() - ledger.acknowledged.len();
    assert!(
        extra <= ledger.refused,
        "{extra} stored reports were neither acknowledged nor refused"
    );
    eprintln!(
        "reports: {} acknowledged, all stored; {} refused with 503, of which {extra} were \
         stored anyway",
        ledger.acknowledged.len(),
        ledger.refused
    );

    for node in &bench.nodes {
        assert!(
            node.logged("usage flush recovered") > 0,
            "{}",
            node.log_text()
        );
    }
    let Bench { nodes, .. } = bench;
    for node in nodes {
        let log = node.stop();
        assert!(!log.contains("panicked"), "{log}");
    }
    let total = started.elapsed();
    eprintln!("the fault test took {total:?}");
}
