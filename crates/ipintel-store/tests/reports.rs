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
    key, NewKey, NewReport, Plan, PlanLimits, ReportDesk, ReportError, ReportIndex, ReportInsert,
    ReportRules, ReportSettings, ReporterNet, Store,
};
use support::{store_tests, TestDb};

store_tests!(
    concurrent_duplicates_from_several_handles_store_exactly_one,
    concurrent_reports_stop_at_the_daily_limit,
    the_window_and_the_day_are_enforced_by_the_store,
    an_ipv6_report_reads_back_as_written,
    reports_by_key_lists_the_newest_first,
    twenty_reports_of_one_key_over_hours_stay_below_critical,
    free_keys_from_one_network_are_one_reporter,
    the_desk_loads_the_last_30_days_and_maps_refusals,
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
