//! Two `ipintel serve` nodes on one PostgreSQL schema, behind nginx: what
//! one node accepts or an operator changes reaches the other in bounded
//! time (docs/deploy.md states the figures this checks).
//!
//! - a key made with `ipintel keys create` works on both nodes;
//! - a report filed on one node shows in the other's lookups within 2 s;
//! - a key revoked with `ipintel keys revoke` is refused by both within 5 s;
//! - through nginx the nodes see the client address nginx forwards, and
//!   only nginx may forward one;
//! - with `IPINTEL_REDIS_URL` on both nodes, the 101st lookup of a free key
//!   is refused (429) whichever node nginx sends it to, and `/v1/usage`
//!   gives the same figure on both.
//!
//! PostgreSQL is reached at `IPINTEL_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), Redis at
//! `IPINTEL_TEST_REDIS_ADDR` (default `127.0.0.1:6379`), and nginx is
//! Debian's (`scripts/test.sh` installs it when missing). When one is
//! missing the tests fail if `CI` is set, and otherwise say why they skip.
#![allow(clippy::unwrap_used, reason = "test helpers fail loudly")]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::postgres::{ci, Schema};
use support::server::{cli, create_key_with_id, parse_reply, Reply, Server};
use support::tiny_data_dir;

/// The address nginx connects to the nodes from (`proxy_bind`): the one
/// address the nodes trust to forward a client's. The test's own requests
/// come from 127.0.0.1, so the nodes can tell them apart on one loopback.
const NGINX_SOURCE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// A client address of the test's, other than 127.0.0.1.
const CLIENT: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
/// What the issue asks: a report shows on every node within this long.
const REPORT_PROPAGATION: Duration = Duration::from_secs(2);
/// A revoked key is refused by every node within this long.
const REVOCATION_PROPAGATION: Duration = Duration::from_secs(5);
/// Node logs without the access lines: nobody reads the pipe while the
/// test runs, so it must not fill.
const NODE_LOG_FILTER: &str = "info,ipintel::access=warn";

/// Skips the test with `why`, or fails it under `CI`.
fn missing(why: &str) {
    assert!(!ci(), "{why}; CI is set, so the cluster test must run");
    eprintln!("skipped: {why} (with CI set, this is a failure)");
}

/// A key on the professional plan made with the CLI: its id and full text.
fn create_key(db: &Path) -> (String, String) {
    create_key_with_id(db, &["--plan", "professional"])
}

fn start_node(data: &Path, schema: &Schema, extra: &[(&str, &str)]) -> Server {
    let trusted = format!("{NGINX_SOURCE}/32");
    let mut env = vec![
        ("IPINTEL_TRUSTED_PROXIES", trusted.as_str()),
        ("RUST_LOG", NODE_LOG_FILTER),
    ];
    env.extend_from_slice(extra);
    Server::start(data, schema.db(), &env)
}

/// The test's Redis, `host:port`.
fn redis_addr() -> String {
    std::env::var("IPINTEL_TEST_REDIS_ADDR").unwrap_or_else(|_| "127.0.0.1:6379".to_owned())
}

/// Sends one inline command to Redis and returns its first reply line,
/// or why it could not.
fn redis_command(command: &str) -> Result<String, String> {
    let address = redis_addr();
    let target: SocketAddr = address.parse().map_err(|e| format!("{address}: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&target, Duration::from_secs(2))
        .map_err(|e| format!("Redis at {address} unreachable: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = [0u8; 256];
    let n = stream.read(&mut reply).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&reply[..n]);
    Ok(text.lines().next().unwrap_or_default().to_owned())
}

/// Stops a node and checks that it stopped cleanly, its polls quiet.
fn stop_node(node: Server) {
    let log = node.stop();
    assert!(log.contains("stopped"), "{log}");
    assert!(!log.contains("failed"), "{log}");
}

/// nginx from Debian's packages, if installed.
fn nginx_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|dir| dir.join("nginx"))
        .find(|file| file.is_file())
}

/// nginx in front of the nodes, as a child process with its own files.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // One process (`master_process off`): nothing is left behind.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    /// Starts nginx on a free loopback port in front of `upstreams`.
    fn start(binary: &Path, upstreams: &[&str]) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 1..=3 {
            // Free when asked; another process could take it before nginx
            // binds it, so a failed start is tried again.
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let conf = dir.path().join("nginx.conf");
            std::fs::write(&conf, nginx_conf(dir.path(), addr, upstreams)).unwrap();
            let error_log = dir.path().join("error.log");
            let mut child = Command::new(binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(&error_log)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            if wait_for_port(&mut child, addr) {
                return Nginx { child, addr, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&error_log).unwrap_or_default();
            assert!(attempt < 3, "nginx did not start: {log}");
            eprintln!("nginx did not start on port {port}, trying another: {log}");
        }
        unreachable!("the loop returns or fails");
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// The configuration the deployment guide shows, with the test's paths and
/// ports: both nodes in one `upstream`, the client address forwarded.
fn nginx_conf(dir: &Path, listen: SocketAddr, upstreams: &[&str]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|addr| format!("        server {addr} max_fails=3 fail_timeout=10s;\n"))
        .collect();
    format!(
        "daemon off;
master_process off;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream ipintel {{
{servers}        keepalive 16;
    }}
    server {{
        listen {listen};
        location / {{
            proxy_pass http://ipintel;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_bind {NGINX_SOURCE};
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"
    )
}

/// Waits up to 10 s for `addr` to accept; false if `child` exits first.
fn wait_for_port(child: &mut Child, addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The node that answered through nginx.
fn upstream(reply: &Reply) -> String {
    reply.header("x-upstream").unwrap().to_owned()
}

/// A request from the test, on a fresh connection.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    key: Option<&'a str>,
    form: Option<&'a str>,
    forwarded_for: Option<&'a str>,
    /// The client address to connect from (127.0.0.1 if `None`).
    from: Option<Ipv4Addr>,
}

impl<'a> Request<'a> {
    fn get(path: &'a str, key: Option<&'a str>) -> Self {
        Request {
            method: "GET",
            path,
            key,
            form: None,
            forwarded_for: None,
            from: None,
        }
    }

    fn report(key: &'a str, form: &'a str) -> Self {
        Request {
            method: "POST",
            form: Some(form),
            ..Request::get("/v1/ip/report", Some(key))
        }
    }

    fn send(&self, to: SocketAddr) -> Reply {
        let mut stream = connect(to, self.from);
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let body = self.form.unwrap_or("");
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.path,
            body.len()
        );
        if self.form.is_some() {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        if let Some(key) = self.key {
            head.push_str(&format!("X-API-Key: {key}\r\n"));
        }
        if let Some(forwarded) = self.forwarded_for {
            head.push_str(&format!("X-Forwarded-For: {forwarded}\r\n"));
        }
        stream
            .write_all(format!("{head}\r\n{body}").as_bytes())
            .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        parse_reply(&raw).unwrap_or_else(|| panic!("not an HTTP response: {raw:?}"))
    }
}

/// A connection to `to`, from the loopback address `from` when given.
fn connect(to: SocketAddr, from: Option<Ipv4Addr>) -> TcpStream {
    let Some(from) = from else {
        return TcpStream::connect_timeout(&to, Duration::from_secs(5)).unwrap();
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(IpAddr::V4(from), 0)).unwrap();
        socket.connect(to).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream
}

/// Sends `request` through nginx until each of `nodes` has answered once;
/// returns the answers, one per node, in the order of `nodes`.
fn through_each(nginx: &Nginx, nodes: &[&Server], request: &Request<'_>) -> Vec<Reply> {
    let mut replies: Vec<Option<Reply>> = nodes.iter().map(|_| None).collect();
    for _ in 0..8 * nodes.len() {
        let reply = request.send(nginx.addr);
        let upstream = upstream(&reply);
        let node = nodes.iter().position(|n| n.addr == upstream);
        let node = node.unwrap_or_else(|| panic!("answered by {upstream}: {reply:?}"));
        replies[node].get_or_insert(reply);
        if replies.iter().all(Option::is_some) {
            return replies.into_iter().map(Option::unwrap).collect();
        }
    }
    panic!("nginx did not reach every node: {}", nginx.error_log());
}

fn addr(node: &Server) -> SocketAddr {
    node.addr.parse().unwrap()
}

/// Polls `done` every 20 ms until it holds; returns how long that took,
/// or fails once `limit` has passed.
fn within(limit: Duration, what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if done() {
            return started.elapsed();
        }
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `threat.reports.count` of `ip` as `node` answers it.
fn reports_on(node: SocketAddr, ip: &str, key: &str) -> u64 {
    let path = format!("/v1/ip/{ip}/threat");
    let reply = Request::get(&path, Some(key)).send(node);
    assert_eq!(reply.status, 200, "{reply:?}");
    reply.json()["threat"]["reports"]["count"]
        .as_u64()
        .unwrap_or(0)
}

fn score_on(node: SocketAddr, ip: &str, key: &str) -> u64 {
    let path = format!("/v1/ip/{ip}/threat");
    Request::get(&path, Some(key)).send(node).json()["threat"]["score"]
        .as_u64()
        .unwrap()
}

fn refused(node: SocketAddr, key: &str) -> bool {
    let reply = Request::get("/v1/ip/8.8.8.8", Some(key)).send(node);
    match reply.status {
        200 => false,
        403 if reply.code().as_deref() == Some("revoked_api_key") => true,
        _ => panic!("{reply:?}"),
    }
}

/// The cluster, when PostgreSQL and nginx are there.
struct Cluster {
    schema: Schema,
    _data: tempfile::TempDir,
    nodes: [Server; 2],
    nginx: Option<Nginx>,
}

impl Cluster {
    fn start(test: &str, with_nginx: bool, extra: &[(&str, &str)]) -> Option<Cluster> {
        let nginx_binary = if with_nginx {
            let Some(binary) = nginx_binary() else {
                missing("nginx is not installed (Debian package nginx-light or nginx)");
                return None;
            };
            Some(binary)
        } else {
            None
        };
        let schema = Schema::create(&format!("cluster_{test}"))?;
        let data = tempfile::tempdir().unwrap();
        tiny_data_dir(data.path());
        // The first start migrates the schema; the second finds it done.
        let first = start_node(data.path(), &schema, extra);
        let nodes = [first, start_node(data.path(), &schema, extra)];
        let nginx = nginx_binary.map(|binary| {
            let upstreams = [nodes[0].addr.as_str(), nodes[1].addr.as_str()];
            Nginx::start(&binary, &upstreams)
        });
        Some(Cluster {
            schema,
            _data: data,
            nodes,
            nginx,
        })
    }

    fn node_addrs(&self) -> [SocketAddr; 2] {
        [addr(&self.nodes[0]), addr(&self.nodes[1])]
    }

    fn nginx(&self) -> &Nginx {
        self.nginx.as_ref().unwrap()
    }

    fn stop(self) {
        drop(self.nginx);
        let [a, b] = self.nodes;
        stop_node(a);
        stop_node(b);
        drop(self.schema);
    }
}

#[test]
fn two_nodes_behind_nginx_share_keys_reports_and_revocations() {
    let started = Instant::now();
    let Some(cluster) = Cluster::start("main", true, &[]) else {
        return;
    };
    let db = cluster.schema.db();
    let (_, key) = create_key(db);
    let (revoked_id, revoked) = create_key(db);
    let (skewed_id, skewed) = create_key(db);
    let nodes = cluster.node_addrs();
    let node_refs = [&cluster.nodes[0], &cluster.nodes[1]];
    let nginx = cluster.nginx();

    // A key made with the CLI works on both nodes, directly and through nginx.
    for k in [&key, &revoked, &skewed] {
        for node in nodes {
            let reply = Request::get("/v1/ip/8.8.8.8", Some(k)).send(node);
            assert_eq!(reply.status, 200, "{reply:?}");
        }
        for reply in through_each(nginx, &node_refs, &Request::get("/v1/ip/8.8.8.8", Some(k))) {
            assert_eq!(reply.status, 200, "{reply:?}");
            assert_eq!(reply.json()["geo"]["city"], "Mountain View");
        }
    }

    check_client_addresses(nginx, &node_refs, nodes);
    check_reports(nginx, &node_refs, &key);
    check_revocations(
        &cluster,
        &key,
        (&revoked_id, &revoked),
        (&skewed_id, &skewed),
    );

    cluster.stop();
    let total = started.elapsed();
    eprintln!("cluster test took {total:?}");
    assert!(total < Duration::from_secs(60), "{total:?}");
}

/// Through nginx each node sees the client's own address; a forged
/// `X-Forwarded-For` is believed from nginx's hop only, never directly.
fn check_client_addresses(nginx: &Nginx, node_refs: &[&Server; 2], nodes: [SocketAddr; 2]) {
    let forged = Request {
        forwarded_for: Some("198.51.100.9"),
        from: Some(CLIENT),
        ..Request::get("/v1/portal/me", None)
    };
    for reply in through_each(nginx, node_refs, &forged) {
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["ip"], CLIENT.to_string(), "{reply:?}");
    }
    for node in nodes {
        let reply = forged.send(node);
        assert_eq!(reply.json()["ip"], CLIENT.to_string(), "direct: {reply:?}");
    }
}

/// A report filed on one node moves the score on the other within 2 s.
fn check_reports(nginx: &Nginx, node_refs: &[&Server; 2], key: &str) {
    let nodes = [addr(node_refs[0]), addr(node_refs[1])];
    let clean = score_on(nodes[1], "1.0.0.7", key);
    let filed = Request::report(
        key,
        "ip=1.0.0.7&category=22&severity=critical&confidence=100",
    );
    assert_eq!(filed.send(nodes[0]).status, 201);
    assert_eq!(
        reports_on(nodes[0], "1.0.0.7", key),
        1,
        "at once where filed"
    );
    let took = within(REPORT_PROPAGATION, "report from A on B", || {
        reports_on(nodes[1], "1.0.0.7", key) == 1
    });
    eprintln!("report filed on node A seen on node B after {took:?}");
    assert!(score_on(nodes[1], "1.0.0.7", key) > clean);

    // Filed through nginx: whichever node took it, the other follows.
    let form = "ip=1.0.0.8&category=22&severity=high";
    let reply = Request::report(key, form).send(nginx.addr);
    assert_eq!(reply.status, 201, "{reply:?}");
    let took = within(REPORT_PROPAGATION, "report through nginx on both", || {
        nodes
            .iter()
            .all(|node| reports_on(*node, "1.0.0.8", key) == 1)
    });
    eprintln!(
        "report filed through nginx (on {}) seen on both after {took:?}",
        upstream(&reply)
    );
    let path = "/v1/ip/1.0.0.7/threat";
    for reply in through_each(nginx, node_refs, &Request::get(path, Some(key))) {
        assert_eq!(reply.json()["threat"]["reports"]["count"], 1, "{reply:?}");
    }
}

/// A key revoked with the CLI is refused by both nodes within 5 s, and so
/// is one revoked by a process whose clock is 8 s slow (its `revoked_at`
/// is behind; `updated_at` is the database's, as every store writes it).
fn check_revocations(
    cluster: &Cluster,
    key: &str,
    (revoked_id, revoked): (&str, &str),
    (skewed_id, skewed): (&str, &str),
) {
    let nodes = cluster.node_addrs();
    let node_refs = [&cluster.nodes[0], &cluster.nodes[1]];
    cli(cluster.schema.db(), &["keys", "revoke", revoked_id]);
    let took = within(REVOCATION_PROPAGATION, "revocation on both nodes", || {
        nodes.iter().all(|node| refused(*node, revoked))
    });
    eprintln!("key revoked with the CLI refused by both nodes after {took:?}");
    let request = Request::get("/v1/ip/8.8.8.8", Some(revoked));
    for reply in through_each(cluster.nginx(), &node_refs, &request) {
        assert_eq!(
            reply.code().as_deref(),
            Some("revoked_api_key"),
            "{reply:?}"
        );
    }

    let slow = ipintel_store::now_unix() - 8;
    cluster.schema.execute(&format!(
        "UPDATE api_keys SET revoked_at = {slow}, \
         updated_at = FLOOR(EXTRACT(EPOCH FROM clock_timestamp()))::BIGINT WHERE id = '{skewed_id}'"
    ));
    let took = within(REVOCATION_PROPAGATION, "slow-clock revocation", || {
        nodes.iter().all(|node| refused(*node, skewed))
    });
    eprintln!("revocation by a clock 8 s slow refused by both nodes after {took:?}");
    assert!(!refused(nodes[0], key) && !refused(nodes[1], key));
}

#[test]
fn with_redis_the_101st_free_lookup_is_refused_on_either_node() {
    match redis_command("PING") {
        Ok(pong) if pong == "+PONG" => {}
        Ok(other) => return missing(&format!("Redis answered PING with {other:?}")),
        Err(why) => return missing(&why),
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let prefix = format!("ipintel-cluster-test:{}:{nanos}:", std::process::id());
    let url = format!("redis://{}/0", redis_addr());
    let redis = [
        ("IPINTEL_REDIS_URL", url.as_str()),
        ("IPINTEL_REDIS_PREFIX", prefix.as_str()),
        // Well above any reply time of a loaded CI machine: this test is
        // about exact counts, not timeouts.
        ("IPINTEL_REDIS_TIMEOUT_MS", "2000"),
    ];
    let Some(cluster) = Cluster::start("redis", true, &redis) else {
        return;
    };
    let (id, key) = create_key_with_id(cluster.schema.db(), &["--plan", "free"]);
    let (id, key) = (id.as_str(), key.as_str());
    let nginx = cluster.nginx();

    let mut served_by = std::collections::BTreeMap::<String, u32>::new();
    for i in 1..=100 {
        let reply = Request::get("/v1/ip/8.8.8.8", Some(key)).send(nginx.addr);
        assert_eq!(reply.status, 200, "lookup {i}: {reply:?}");
        *served_by.entry(upstream(&reply)).or_default() += 1;
    }
    assert_eq!(served_by.len(), 2, "nginx used both nodes: {served_by:?}");
    let node_refs = [&cluster.nodes[0], &cluster.nodes[1]];
    for reply in through_each(
        nginx,
        &node_refs,
        &Request::get("/v1/ip/8.8.8.8", Some(key)),
    ) {
        assert_eq!(reply.status, 429, "{reply:?}");
        assert_eq!(reply.code().as_deref(), Some("quota_exceeded"), "{reply:?}");
    }

    // Each node's figure is the store's plus its own unwritten counts, so
    // they agree once both have flushed (every second).
    let nodes = cluster.node_addrs();
    let today = |node: SocketAddr| {
        let reply = Request::get("/v1/usage", Some(key)).send(node);
        assert_eq!(reply.status, 200, "{reply:?}");
        reply.json()["today"].as_u64().unwrap()
    };
    let took = within(
        Duration::from_secs(5),
        "usage agreeing on both nodes",
        || nodes.iter().all(|node| today(*node) == 100),
    );
    eprintln!("usage agreed on both nodes (100) after {took:?}; served by {served_by:?}");

    cluster.stop();
    let day = ipintel_store::UtcDay::from_unix(ipintel_store::now_unix());
    let _ = redis_command(&format!("DEL {prefix}quota:{id}:{day}"));
}
