//! Reports in a real store, on SQLite and on PostgreSQL: the atomic
//! duplicate and quota checks, and the index built from what the store
//! holds. The index-only checks at the end need no store.
#![allow(clippy::unwrap_used)]

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use ipintel_core::reports::{ReportCategories, Severity};
use ipintel_core::ThreatLevel;
use ipintel_store::{
    key, now_unix, NewKey, NewReport, Plan, PlanLimits, ReportDesk, ReportError, ReportIndex,
    ReportInsert, ReportRules, ReportSettings, ReporterNet, Store,
};
use sqlx::Connection;
use support::{store_tests, Backend, TestDb};

store_tests!(
    concurrent_duplicates_from_several_handles_store_exactly_one,
    concurrent_reports_stop_at_the_daily_limit,
    the_window_and_the_day_are_enforced_by_the_store,
    an_ipv6_report_reads_back_as_written,
    reports_by_key_lists_the_newest_first,
    twenty_reports_of_one_key_over_hours_stay_below_critical,
    free_keys_from_one_network_are_one_reporter,
    the_desk_loads_the_last_30_days_and_maps_refusals,
    reports_after_and_with_ids_read_committed_rows_in_id_order,
    a_desk_indexes_what_another_desk_accepted_and_its_own_once,
    a_row_that_appears_below_the_highest_id_read_is_still_indexed,
    concurrent_desks_index_every_report_exactly_once,
    a_report_the_poll_reads_before_its_desk_indexes_it_counts_once,
);

const NOW: i64 = 1_790_000_000;

async fn store_with_keys(db: &TestDb, n: usize) -> (Arc<dyn Store>, Vec<key::KeyId>) {
    let store = db.open().await;
    let mut ids = Vec::new();
    for _ in 0..n {
        let presented = key::generate();
        let new = NewKey {
            id: presented.id.clone(),
            secret_hash: presented.secret_hash(),
            label: None,
            plan: None,
            daily_limit_override: None,
            created_at: NOW,
        };
        store.insert_key(&new).await.unwrap();
        ids.push(presented.id);
    }
    (store, ids)
}

fn report(key: &key::KeyId, ip: &str, at: i64) -> NewReport {
    NewReport {
        key_id: key.clone(),
        ip: ip.parse::<IpAddr>().unwrap(),
        categories: ReportCategories::parse_list("22").unwrap(),
        severity: Severity::Critical,
        confidence: 100,
        comment: None,
        reported_at: at,
        received_at: at,
        country: Some("US".into()),
        asn: Some(15169),
        asn_name: Some("Google LLC".into()),
        reporter_network: None,
        reporter_plan: Some(Plan::Professional),
    }
}

/// A report filed with a free key from the client address `client`.
fn free_report(key: &key::KeyId, ip: &str, at: i64, client: &str) -> NewReport {
    NewReport {
        reporter_network: ReporterNet::of(client.parse().unwrap()),
        reporter_plan: Some(Plan::Free),
        ..report(key, ip, at)
    }
}

const RULES: ReportRules = ReportRules {
    duplicate_window_secs: 900,
    daily_limit: 100,
};

/// Independent handles on the database, as separate processes would
/// hold: each with connections of its own.
async fn handles(db: &TestDb, n: usize) -> Vec<Arc<dyn Store>> {
    let mut handles = Vec::new();
    for _ in 0..n {
        handles.push(db.open().await);
    }
    handles
}

async fn concurrent_duplicates_from_several_handles_store_exactly_one(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let handles = handles(&db, 4).await;
    let tasks: Vec<_> = (0..16)
        .map(|n| {
            let store = Arc::clone(&handles[n % handles.len()]);
            let new = report(&ids[0], "8.8.8.8", NOW);
            tokio::spawn(async move { store.insert_report(&new, &RULES).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReportInsert::Stored(_) => stored += 1,
            ReportInsert::Duplicate { retry_after_secs } => assert_eq!(retry_after_secs, 900),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(store.reports_since(0).await.unwrap().len(), 1);
}

async fn concurrent_reports_stop_at_the_daily_limit(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 2).await;
    let handles = handles(&db, 4).await;
    let tight = ReportRules {
        daily_limit: 5,
        ..RULES
    };
    // Twenty different addresses: no duplicates, only the limit applies.
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = Arc::clone(&handles[n % handles.len()]);
            let new = report(&ids[0], &format!("192.0.2.{n}"), NOW);
            tokio::spawn(async move { store.insert_report(&new, &tight).await.unwrap() })
        })
        .collect();
    let mut stored = 0;
    for task in tasks {
        match task.await.unwrap() {
            ReportInsert::Stored(_) => stored += 1,
            ReportInsert::QuotaExceeded { limit: 5, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(stored, 5);
    assert_eq!(store.reports_since(0).await.unwrap().len(), 5);
    let other = report(&ids[1], "192.0.2.1", NOW);
    assert!(
        matches!(
            store.insert_report(&other, &tight).await.unwrap(),
            ReportInsert::Stored(_)
        ),
        "another key has its own limit"
    );
}

async fn the_window_and_the_day_are_enforced_by_the_store(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let first = report(&ids[0], "8.8.8.8", NOW);
    assert!(matches!(
        store.insert_report(&first, &RULES).await.unwrap(),
        ReportInsert::Stored(_)
    ));
    let later = report(&ids[0], "8.8.8.8", NOW + 600);
    assert_eq!(
        store.insert_report(&later, &RULES).await.unwrap(),
        ReportInsert::Duplicate {
            retry_after_secs: 300
        }
    );
    let after = report(&ids[0], "8.8.8.8", NOW + 900);
    assert!(matches!(
        store.insert_report(&after, &RULES).await.unwrap(),
        ReportInsert::Stored(_)
    ));

    let tight = ReportRules {
        daily_limit: 3,
        ..RULES
    };
    let third = report(&ids[0], "8.8.4.4", NOW + 901);
    assert!(matches!(
        store.insert_report(&third, &tight).await.unwrap(),
        ReportInsert::Stored(_)
    ));
    let fourth = report(&ids[0], "1.1.1.1", NOW + 902);
    match store.insert_report(&fourth, &tight).await.unwrap() {
        ReportInsert::QuotaExceeded {
            limit: 3,
            retry_after_secs,
        } => {
            assert!(retry_after_secs <= 86_400);
        }
        other => panic!("{other:?}"),
    }
    let rows = store.reports_since(0).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0].report, first, "a row reads back as written");
}

async fn an_ipv6_report_reads_back_as_written(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let new = NewReport {
        comment: Some("Zugriff über 2001:db8::/64 — ✓".into()),
        reporter_network: ReporterNet::of("2001:db8:1:2::9".parse().unwrap()),
        asn: Some(u32::MAX),
        country: None,
        asn_name: None,
        ..report(&ids[0], "2001:db8::1:0:0:1", NOW)
    };

    let ReportInsert::Stored(stored) = store.insert_report(&new, &RULES).await.unwrap() else {
        panic!("refused");
    };

    let rows = store.reports_since(NOW).await.unwrap();
    assert_eq!(rows, vec![stored]);
    assert_eq!(rows[0].report, new);
    let same = report(&ids[0], "2001:0db8:0:0:1::1", NOW + 1);
    assert!(
        matches!(
            store.insert_report(&same, &RULES).await.unwrap(),
            ReportInsert::Duplicate { .. }
        ),
        "an IPv6 address is a duplicate of itself"
    );
}

async fn reports_by_key_lists_the_newest_first(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 2).await;
    for (n, ip) in ["8.8.8.8", "8.8.4.4", "1.1.1.1"].iter().enumerate() {
        let at = NOW + i64::try_from(n).unwrap();
        store
            .insert_report(&report(&ids[0], ip, at), &RULES)
            .await
            .unwrap();
    }
    store
        .insert_report(&report(&ids[1], "9.9.9.9", NOW), &RULES)
        .await
        .unwrap();

    let latest = store.reports_by_key(&ids[0], 2).await.unwrap();

    let ips: Vec<String> = latest.iter().map(|r| r.report.ip.to_string()).collect();
    assert_eq!(ips, ["1.1.1.1", "8.8.4.4"]);
    assert!(latest[0].id > latest[1].id);
    assert!(store.reports_since(NOW + 3).await.unwrap().is_empty());
    assert_eq!(store.reports_since(NOW + 1).await.unwrap().len(), 2);
}

async fn twenty_reports_of_one_key_over_hours_stay_below_critical(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 4).await;
    for n in 0..20 {
        let at = NOW - 5 * 3600 + n * 901;
        let new = report(&ids[0], "8.8.8.8", at);
        assert!(matches!(
            store.insert_report(&new, &RULES).await.unwrap(),
            ReportInsert::Stored(_)
        ));
    }
    let index = ReportIndex::from_reports(&store.reports_since(0).await.unwrap(), NOW);
    let summary = index.summary("8.8.8.8".parse().unwrap(), NOW).unwrap();
    assert_eq!(summary.count, 20);
    assert_eq!(summary.distinct_reporters, 1);
    assert!(
        ThreatLevel::from_score(summary.score.weight) < ThreatLevel::High,
        "{summary:?}"
    );

    for id in &ids[1..] {
        index.add(&report(id, "8.8.8.8", NOW), NOW);
    }
    let summary = index.summary("8.8.8.8".parse().unwrap(), NOW).unwrap();
    assert_eq!(summary.distinct_reporters, 4);
    assert_eq!(
        ThreatLevel::from_score(summary.score.weight),
        ThreatLevel::Critical
    );
}

async fn free_keys_from_one_network_are_one_reporter(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 5).await;
    for (n, id) in ids.iter().enumerate() {
        let client = format!("198.51.100.{}", n + 10);
        let new = free_report(id, "8.8.8.8", NOW, &client);
        let ReportInsert::Stored(stored) = store.insert_report(&new, &RULES).await.unwrap() else {
            panic!("refused");
        };
        assert_eq!(stored.report, new);
    }
    let rows = store.reports_since(0).await.unwrap();
    assert_eq!(rows[0].report.reporter_plan, Some(Plan::Free));
    assert_eq!(
        rows[0].report.reporter_network.unwrap().to_string(),
        "198.51.100.0/24",
        "stored and read back"
    );

    let index = ReportIndex::from_reports(&rows, NOW);
    let summary = index.summary("8.8.8.8".parse().unwrap(), NOW).unwrap();
    assert_eq!(summary.count, 5);
    assert_eq!(summary.distinct_reporters, 1, "five keys, one network");
    assert_eq!(summary.score.weight, 55, "one reporter's cap");
}

#[tokio::test]
async fn free_keys_from_many_networks_stop_at_high() {
    let index = ReportIndex::new();
    for n in 0..50u8 {
        let id = key::generate().id;
        let client = format!("203.0.{n}.1");
        index.add(&free_report(&id, "8.8.8.8", NOW, &client), NOW);
    }
    let summary = index.summary("8.8.8.8".parse().unwrap(), NOW).unwrap();
    assert_eq!(summary.distinct_reporters, 50);
    assert_eq!(summary.score.weight, 70);
    assert_eq!(
        ThreatLevel::from_score(summary.score.weight),
        ThreatLevel::High
    );

    // One paid reporter on top can make it critical.
    index.add(&report(&key::generate().id, "8.8.8.8", NOW), NOW);
    let summary = index.summary("8.8.8.8".parse().unwrap(), NOW).unwrap();
    assert_eq!(
        ThreatLevel::from_score(summary.score.weight),
        ThreatLevel::Critical,
        "{summary:?}"
    );
}

#[tokio::test]
async fn area_statistics_count_by_country_and_asn() {
    let index = ReportIndex::new();
    let ids = [key::generate().id];
    index.add(&report(&ids[0], "8.8.8.8", NOW - 3600), NOW);
    index.add(&report(&ids[0], "8.8.4.4", NOW - 3 * 86_400), NOW);
    let mut other = report(&ids[0], "1.1.1.1", NOW - 60);
    other.country = Some("AU".into());
    other.asn = Some(13335);
    other.asn_name = Some("Cloudflare".into());
    index.add(&other, NOW);

    let us = index.country_stats("us", NOW);
    assert_eq!(
        (us.last_day, us.last_week, us.distinct_addresses_last_week),
        (1, 2, 2)
    );
    assert_eq!(us.top_networks.len(), 1);
    assert_eq!(us.top_networks[0].asn, Some(15169));
    assert_eq!(us.top_networks[0].reports, 2);
    let cf = index.asn_stats(13335, NOW);
    assert_eq!((cf.last_day, cf.last_week), (1, 1));
    assert_eq!(index.asn_stats(64512, NOW).last_week, 0);

    index.prune(NOW + 31 * 86_400);
    assert!(index.is_empty(), "reports older than 30 days are dropped");
}

async fn the_desk_loads_the_last_30_days_and_maps_refusals(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let shared = Arc::clone(&store);
    let old = report(&ids[0], "8.8.8.8", ipintel_store::now_unix() - 40 * 86_400);
    store.insert_report(&old, &RULES).await.unwrap();
    let limits = PlanLimits {
        free_reports: 1,
        ..PlanLimits::default()
    };
    let now = ipintel_store::now_unix();
    let desk = ReportDesk::open(Arc::clone(&shared), limits, ReportSettings::default(), now)
        .await
        .unwrap();
    assert!(desk.index().is_empty(), "a 40-day-old report is not loaded");

    let fresh = report(&ids[0], "8.8.4.4", now);
    desk.submit(fresh.clone(), Plan::Free).await.unwrap();
    assert_eq!(desk.index().len(), 1);
    assert!(matches!(
        desk.submit(fresh, Plan::Free).await,
        Err(ReportError::Duplicate { .. })
    ));
    assert!(matches!(
        desk.submit(report(&ids[0], "1.1.1.1", now), Plan::Free)
            .await,
        Err(ReportError::QuotaExceeded { limit: 1, .. })
    ));
}

async fn reports_after_and_with_ids_read_committed_rows_in_id_order(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let mut stored = Vec::new();
    for (n, ip) in ["8.8.8.8", "8.8.4.4", "1.1.1.1", "2001:db8::7"]
        .iter()
        .enumerate()
    {
        let at = NOW + i64::try_from(n).unwrap();
        let ReportInsert::Stored(row) = store
            .insert_report(&report(&ids[0], ip, at), &RULES)
            .await
            .unwrap()
        else {
            panic!("refused");
        };
        stored.push(row);
    }
    let id = |n: usize| stored[n].id;
    assert!(stored.windows(2).all(|w| w[0].id < w[1].id));

    assert_eq!(store.reports_after(0, 2).await.unwrap(), stored[..2]);
    assert_eq!(store.reports_after(id(1), 10).await.unwrap(), stored[2..]);
    assert!(store.reports_after(id(3), 10).await.unwrap().is_empty());

    let found = store
        .reports_with_ids(&[id(3), id(0), id(3) + 1_000, -5])
        .await
        .unwrap();
    assert_eq!(found, vec![stored[0].clone(), stored[3].clone()]);
    assert!(store.reports_with_ids(&[]).await.unwrap().is_empty());
}

/// A desk on a handle of its own, as one node of several holds.
async fn desk_on(db: &TestDb) -> Arc<ReportDesk> {
    let store = db.open().await;
    ReportDesk::open(
        store,
        PlanLimits::default(),
        ReportSettings::default(),
        now_unix(),
    )
    .await
    .unwrap()
}

/// Reports about `ip` in a desk's index.
fn count(desk: &ReportDesk, ip: &str) -> u64 {
    let now = now_unix();
    desk.index()
        .summary(ip.parse().unwrap(), now)
        .map_or(0, |summary| summary.count)
}

async fn a_desk_indexes_what_another_desk_accepted_and_its_own_once(db: TestDb) {
    let (_, ids) = store_with_keys(&db, 2).await;
    let (a, b) = (desk_on(&db).await, desk_on(&db).await);
    let now = now_unix();

    a.submit(report(&ids[0], "8.8.8.8", now), Plan::Professional)
        .await
        .unwrap();
    assert_eq!(count(&a, "8.8.8.8"), 1, "indexed at once where accepted");
    b.catch_up().await.unwrap();
    assert_eq!(count(&b, "8.8.8.8"), 1, "read by the other desk");
    a.catch_up().await.unwrap();
    assert_eq!(count(&a, "8.8.8.8"), 1, "not counted twice where accepted");

    b.submit(report(&ids[1], "8.8.8.8", now), Plan::Professional)
        .await
        .unwrap();
    for desk in [&a, &b, &a, &b] {
        desk.catch_up().await.unwrap();
    }
    assert_eq!((count(&a, "8.8.8.8"), count(&b, "8.8.8.8")), (2, 2));

    // The background poll does the same within a couple of intervals.
    let c = desk_on(&db).await;
    a.submit(report(&ids[0], "1.1.1.1", now), Plan::Professional)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + 3 * ipintel_store::REPORT_POLL_INTERVAL;
    while count(&b, "1.1.1.1") == 0 || count(&c, "1.1.1.1") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "not polled");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(count(&c, "8.8.8.8"), 2, "loaded at start-up");
}

/// Inserts a report row with its id given, bypassing the store: how a row
/// whose id was taken earlier looks when it commits late.
async fn insert_with_id(db: &TestDb, id: i64, key: &key::KeyId, ip: &str, at: i64) {
    let overriding = match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => "OVERRIDING SYSTEM VALUE",
    };
    db.execute(&format!(
        "INSERT INTO reports (id, key_id, ip, ip_family, network_key, categories, severity, \
         confidence, reported_at, received_at, reporter_plan) {overriding} \
         VALUES ({id}, '{key}', '{ip}', 4, '{ip}', 'ssh_bruteforce', 3, 90, {at}, {at}, 'free')"
    ))
    .await;
}

async fn a_row_that_appears_below_the_highest_id_read_is_still_indexed(db: TestDb) {
    let (store, ids) = store_with_keys(&db, 1).await;
    let b = desk_on(&db).await;
    let now = now_unix();
    let ReportInsert::Stored(first) = store
        .insert_report(&report(&ids[0], "8.8.8.8", now), &RULES)
        .await
        .unwrap()
    else {
        panic!("refused");
    };
    let id = first.id;
    insert_with_id(&db, id + 10, &ids[0], "9.9.9.9", now).await;
    b.catch_up().await.unwrap();
    assert_eq!((count(&b, "8.8.8.8"), count(&b, "9.9.9.9")), (1, 1));

    // Ids id + 1 ..= id + 9 were skipped; two of them commit now.
    insert_with_id(&db, id + 3, &ids[0], "8.8.4.4", now).await;
    insert_with_id(&db, id + 9, &ids[0], "9.9.9.9", now).await;
    assert_eq!(b.catch_up().await.unwrap(), 2);
    assert_eq!((count(&b, "8.8.4.4"), count(&b, "9.9.9.9")), (1, 2));
    assert_eq!(b.catch_up().await.unwrap(), 0, "each is taken once");
    assert_eq!(count(&b, "9.9.9.9"), 2);
}

/// The case the gaps are for, with PostgreSQL's own ids: an insertion takes
/// its id, another takes the next one and commits first, a poll runs, and
/// only then does the first commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_report_committed_after_a_higher_id_is_indexed() {
    support::run(Backend::Postgres, |db: TestDb| async move {
        let (store, ids) = store_with_keys(&db, 2).await;
        let b = desk_on(&db).await;
        let now = now_unix();

        let mut slow = db.postgres_connection().await;
        let mut open = slow.begin().await.unwrap();
        let early: i64 = sqlx::query_scalar(
            "INSERT INTO reports (key_id, ip, ip_family, network_key, categories, severity, \
             confidence, reported_at, received_at, reporter_plan) \
             VALUES ($1, '8.8.4.4', 4, '8.8.4.4', 'ssh_bruteforce', 3, 90, $2, $2, 'free') \
             RETURNING id",
        )
        .bind(ids[0].as_str())
        .bind(now)
        .fetch_one(&mut *open)
        .await
        .unwrap();
        let ReportInsert::Stored(late) = store
            .insert_report(&report(&ids[1], "8.8.8.8", now), &RULES)
            .await
            .unwrap()
        else {
            panic!("refused");
        };
        assert!(late.id > early, "{} then {early}", late.id);

        b.catch_up().await.unwrap();
        assert_eq!((count(&b, "8.8.8.8"), count(&b, "8.8.4.4")), (1, 0));
        open.commit().await.unwrap();
        b.catch_up().await.unwrap();
        assert_eq!((count(&b, "8.8.8.8"), count(&b, "8.8.4.4")), (1, 1));
        slow.close().await.unwrap();

        // A rolled-back insertion leaves a gap that never fills: the
        // reports after it are indexed all the same.
        let mut open = slow_begin(&db).await;
        sqlx::query(
            "INSERT INTO reports (key_id, ip, ip_family, network_key, categories, severity, \
             confidence, reported_at, received_at) \
             VALUES ($1, '1.1.1.1', 4, '1.1.1.1', 'ssh_bruteforce', 3, 90, $2, $2)",
        )
        .bind(ids[0].as_str())
        .bind(now)
        .execute(&mut open)
        .await
        .unwrap();
        sqlx::query("ROLLBACK").execute(&mut open).await.unwrap();
        store
            .insert_report(&report(&ids[1], "1.0.0.1", now), &RULES)
            .await
            .unwrap();
        b.catch_up().await.unwrap();
        assert_eq!((count(&b, "1.1.1.1"), count(&b, "1.0.0.1")), (0, 1));
    })
    .await;
}

/// A PostgreSQL connection inside a transaction begun with plain SQL.
async fn slow_begin(db: &TestDb) -> sqlx::PgConnection {
    let mut conn = db.postgres_connection().await;
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    conn
}

async fn concurrent_desks_index_every_report_exactly_once(db: TestDb) {
    let (_, ids) = store_with_keys(&db, 12).await;
    let desks = [desk_on(&db).await, desk_on(&db).await];
    let now = now_unix();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = desks
        .iter()
        .map(|desk| {
            let (desk, stop) = (Arc::clone(desk), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    desk.catch_up().await.unwrap();
                }
            })
        })
        .collect();
    let submits: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let desk = Arc::clone(&desks[n % 2]);
            let new = report(id, "8.8.8.8", now);
            tokio::spawn(async move { desk.submit(new, Plan::Professional).await.unwrap() })
        })
        .collect();
    for task in submits {
        task.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in pollers {
        task.await.unwrap();
    }
    for desk in &desks {
        desk.catch_up().await.unwrap();
        assert_eq!(count(desk, "8.8.8.8"), 12);
    }
}

/// A store whose report insertion lets the desk's poll run between the
/// commit and the return: the poll then reads the desk's own report
/// before the desk indexes it.
struct PollBetween {
    inner: Arc<dyn Store>,
    desk: std::sync::OnceLock<std::sync::Weak<ReportDesk>>,
}

#[async_trait::async_trait]
impl Store for PollBetween {
    async fn insert_report(
        &self,
        report: &NewReport,
        rules: &ReportRules,
    ) -> Result<ReportInsert, ipintel_store::StoreError> {
        let inserted = self.inner.insert_report(report, rules).await?;
        let desk = self.desk.get().and_then(std::sync::Weak::upgrade).unwrap();
        assert_eq!(desk.catch_up().await.unwrap(), 1, "the poll read it first");
        Ok(inserted)
    }

    async fn reports_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ipintel_store::StoredReport>, ipintel_store::StoreError> {
        self.inner.reports_after(after, limit).await
    }

    async fn reports_with_ids(
        &self,
        ids: &[i64],
    ) -> Result<Vec<ipintel_store::StoredReport>, ipintel_store::StoreError> {
        self.inner.reports_with_ids(ids).await
    }

    async fn reports_since(
        &self,
        since: i64,
    ) -> Result<Vec<ipintel_store::StoredReport>, ipintel_store::StoreError> {
        self.inner.reports_since(since).await
    }

    async fn reports_by_key(
        &self,
        id: &key::KeyId,
        limit: u32,
    ) -> Result<Vec<ipintel_store::StoredReport>, ipintel_store::StoreError> {
        self.inner.reports_by_key(id, limit).await
    }

    // The rest is not used by a desk.
    async fn insert_key(&self, key: &NewKey) -> Result<(), ipintel_store::StoreError> {
        self.inner.insert_key(key).await
    }

    async fn get_key(
        &self,
        id: &key::KeyId,
    ) -> Result<Option<ipintel_store::StoredKey>, ipintel_store::StoreError> {
        self.inner.get_key(id).await
    }

    async fn list_keys(&self) -> Result<Vec<ipintel_store::KeyInfo>, ipintel_store::StoreError> {
        self.inner.list_keys().await
    }

    async fn revoke_key(
        &self,
        id: &key::KeyId,
        at: i64,
    ) -> Result<bool, ipintel_store::StoreError> {
        self.inner.revoke_key(id, at).await
    }

    async fn set_plan(
        &self,
        id: &key::KeyId,
        plan: Plan,
        daily_limit_override: Option<u64>,
        at: i64,
    ) -> Result<bool, ipintel_store::StoreError> {
        self.inner
            .set_plan(id, plan, daily_limit_override, at)
            .await
    }

    async fn provision_plan(
        &self,
        id: &key::KeyId,
        plan: Plan,
        at: i64,
    ) -> Result<bool, ipintel_store::StoreError> {
        self.inner.provision_plan(id, plan, at).await
    }

    async fn add_usage(
        &self,
        deltas: &[ipintel_store::UsageDelta],
    ) -> Result<(), ipintel_store::StoreError> {
        self.inner.add_usage(deltas).await
    }

    async fn usage_between(
        &self,
        id: &key::KeyId,
        first: ipintel_store::UtcDay,
        last: ipintel_store::UtcDay,
    ) -> Result<u64, ipintel_store::StoreError> {
        self.inner.usage_between(id, first, last).await
    }

    async fn usage_by_day(
        &self,
        id: &key::KeyId,
        first: ipintel_store::UtcDay,
        last: ipintel_store::UtcDay,
    ) -> Result<Vec<(ipintel_store::UtcDay, u64)>, ipintel_store::StoreError> {
        self.inner.usage_by_day(id, first, last).await
    }

    async fn usage_for_day(
        &self,
        day: ipintel_store::UtcDay,
    ) -> Result<Vec<(key::KeyId, u64)>, ipintel_store::StoreError> {
        self.inner.usage_for_day(day).await
    }

    async fn clock(&self) -> Result<i64, ipintel_store::StoreError> {
        self.inner.clock().await
    }

    async fn keys_changed_since(
        &self,
        since: i64,
    ) -> Result<Vec<ipintel_store::StoredKey>, ipintel_store::StoreError> {
        self.inner.keys_changed_since(since).await
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}

async fn a_report_the_poll_reads_before_its_desk_indexes_it_counts_once(db: TestDb) {
    let (_, ids) = store_with_keys(&db, 1).await;
    let store = Arc::new(PollBetween {
        inner: db.open().await,
        desk: std::sync::OnceLock::new(),
    });
    let shared: Arc<dyn Store> = store.clone();
    let desk = ReportDesk::unloaded(shared, PlanLimits::default(), ReportSettings::default());
    store.desk.set(Arc::downgrade(&desk)).unwrap();

    desk.submit(report(&ids[0], "8.8.8.8", now_unix()), Plan::Professional)
        .await
        .unwrap();

    assert_eq!(count(&desk, "8.8.8.8"), 1);
}
