//! The `Store` contract, run on SQLite and on PostgreSQL (see
//! `support/mod.rs`), then the checks that belong to one backend.

// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;

use ipintel_store::{
    key, Accounts, NewKey, Plan, PlanLimits, PostgresStore, PostgresUrl, SqliteStore, StoreError,
    UsageDelta, UtcDay,
};
use support::{new_key, store_tests, Backend, TestDb};

store_tests!(
    migrations_apply_on_a_new_database_and_reopen,
    keys_are_created_listed_and_revoked,
    a_key_id_is_inserted_once,
    a_key_is_never_stored_in_clear,
    usage_deltas_add_up_per_key_and_day,
    deltas_of_one_key_and_day_in_one_batch_add_up,
    usage_by_day_lists_one_keys_days_in_order_within_bounds,
    a_failed_usage_batch_writes_nothing,
    concurrent_usage_batches_from_several_handles_add_up_exactly,
    plans_are_provisioned_once_and_changes_are_listed,
    changes_are_stamped_by_the_database_clock_whatever_the_writer_says,
    a_closed_store_fails_with_a_database_error,
);

fn delta(key: &NewKey, day: UtcDay, count: u64) -> UsageDelta {
    UsageDelta {
        key: key.id.clone(),
        day,
        count,
    }
}

async fn migrations_apply_on_a_new_database_and_reopen(db: TestDb) {
    let store = db.open().await;
    let (_, new) = new_key(1_000);
    store.insert_key(&new).await.unwrap();
    store.close().await;

    let store = db.open().await;
    let stored = store.get_key(&new.id).await.unwrap().unwrap();
    assert_eq!(stored.info.id, new.id);
    assert_eq!(stored.info.label.as_deref(), Some("test"));
    assert_eq!(stored.info.plan, None);
    assert_eq!(stored.info.created_at, 1_000);
    store.close().await;

    let applied = db
        .scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .await;
    let files = std::fs::read_dir(db.migrations_dir())
        .unwrap()
        .filter(|entry| {
            let path = entry.as_ref().unwrap().path();
            path.is_file() && path.extension().is_some_and(|ext| ext == "sql")
        })
        .count();
    assert!(files > 0);
    assert_eq!(
        applied,
        i64::try_from(files).unwrap(),
        "every migration applied, once"
    );
}

async fn keys_are_created_listed_and_revoked(db: TestDb) {
    let accounts = Accounts::open(db.open().await, PlanLimits::default())
        .await
        .unwrap();

    let (first, text) = accounts
        .create_key(Some("alpha".into()), None)
        .await
        .unwrap();
    let parsed = key::parse(&text).unwrap();
    assert_eq!(parsed.id, first.id);
    assert_eq!(first.plan, None);
    let (second, _) = accounts
        .create_key(None, Some(Plan::Professional))
        .await
        .unwrap();
    assert_eq!(second.plan, Some(Plan::Professional));
    assert_eq!(second.plan_provisioned_at, Some(second.created_at));

    let listed = accounts.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.contains(&first));
    assert!(listed.contains(&second));

    assert!(accounts.revoke_key(&first.id).await.unwrap());
    assert!(
        !accounts.revoke_key(&first.id).await.unwrap(),
        "already revoked"
    );
    let unknown: ipintel_store::KeyId = "zzzzzzzzzzzz".parse().unwrap();
    assert!(!accounts.revoke_key(&unknown).await.unwrap());

    let listed = accounts.list_keys().await.unwrap();
    let revoked = listed.iter().find(|k| k.id == first.id).unwrap();
    assert!(revoked.revoked_at.is_some());
    let kept = listed.iter().find(|k| k.id == second.id).unwrap();
    assert!(kept.revoked_at.is_none());

    let json = serde_json::to_value(kept).unwrap();
    assert_eq!(json["plan"], "professional");
    assert_eq!(json["id"], second.id.as_str());
}

async fn a_key_id_is_inserted_once(db: TestDb) {
    let store = db.open().await;
    let (_, new) = new_key(10);
    store.insert_key(&new).await.unwrap();
    let again = NewKey {
        label: Some("impostor".into()),
        ..new.clone()
    };
    assert!(matches!(
        store.insert_key(&again).await,
        Err(StoreError::Database(_))
    ));
    let stored = store.get_key(&new.id).await.unwrap().unwrap();
    assert_eq!(stored.info.label.as_deref(), Some("test"));
}

async fn a_key_is_never_stored_in_clear(db: TestDb) {
    let accounts = Accounts::open(db.open().await, PlanLimits::default())
        .await
        .unwrap();
    let (info, text) = accounts
        .create_key(Some("secretive".into()), None)
        .await
        .unwrap();
    let handle = accounts.authenticate(&text).await.unwrap();
    accounts
        .consume(&handle, 1, ipintel_store::now_unix())
        .unwrap();
    accounts.flush().await.unwrap();
    let secret = text.rsplit('_').next().unwrap().to_owned();
    assert_eq!(secret.len(), 32);

    let bytes = db.everything_stored().await;
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(info.id.as_str().as_bytes()),
        "the scan must see stored data"
    );
    let hash = key::parse(&text).unwrap().secret_hash();
    let hex: String = hash.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        contains(hash.as_bytes()) || contains(hex.as_bytes()),
        "the hash is stored"
    );
    assert!(
        !contains(secret.as_bytes()),
        "the secret is in the database"
    );
    assert!(!contains(text.as_bytes()));
}

async fn usage_deltas_add_up_per_key_and_day(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(10);
    let (_, b) = new_key(10);
    store.insert_key(&a).await.unwrap();
    store.insert_key(&b).await.unwrap();
    let d1 = UtcDay::from_unix(1_791_200_000); // 2026-10-05
    let d2 = UtcDay::from_days(d1.days() + 1);

    store
        .add_usage(&[delta(&a, d1, 5), delta(&b, d1, 1)])
        .await
        .unwrap();
    store
        .add_usage(&[delta(&a, d1, 7), delta(&a, d2, 2)])
        .await
        .unwrap();
    store.add_usage(&[]).await.unwrap();

    assert_eq!(store.usage_between(&a.id, d1, d1).await.unwrap(), 12);
    assert_eq!(store.usage_between(&a.id, d1, d2).await.unwrap(), 14);
    assert_eq!(store.usage_between(&b.id, d2, d2).await.unwrap(), 0);
    let mut day1 = store.usage_for_day(d1).await.unwrap();
    day1.sort();
    let mut expected = vec![(a.id.clone(), 12), (b.id.clone(), 1)];
    expected.sort();
    assert_eq!(day1, expected);
    assert!(store
        .usage_for_day(UtcDay::from_days(d1.days() - 1))
        .await
        .unwrap()
        .is_empty());
}

async fn deltas_of_one_key_and_day_in_one_batch_add_up(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(10);
    store.insert_key(&a).await.unwrap();
    let day = UtcDay::from_days(20_000);
    let batch = [delta(&a, day, 2), delta(&a, day, 3), delta(&a, day, 4)];

    store.add_usage(&batch).await.unwrap();

    assert_eq!(store.usage_between(&a.id, day, day).await.unwrap(), 9);
}

async fn usage_by_day_lists_one_keys_days_in_order_within_bounds(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(10);
    let (_, b) = new_key(10);
    store.insert_key(&a).await.unwrap();
    store.insert_key(&b).await.unwrap();
    let day = |n: i64| UtcDay::from_days(20_000 + n);
    let deltas = [(&a, 5, 3), (&a, 1, 4), (&a, 9, 1), (&b, 2, 8), (&a, 0, 2)];
    let deltas: Vec<UsageDelta> = deltas
        .iter()
        .map(|(key, n, count)| delta(key, day(*n), *count))
        .collect();
    store.add_usage(&deltas).await.unwrap();

    let listed = store.usage_by_day(&a.id, day(1), day(5)).await.unwrap();

    assert_eq!(listed, vec![(day(1), 4), (day(5), 3)]);
    let none = store.usage_by_day(&b.id, day(3), day(9)).await.unwrap();
    assert!(none.is_empty());
}

async fn a_failed_usage_batch_writes_nothing(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(10);
    store.insert_key(&a).await.unwrap();
    let day = UtcDay::from_days(20_000);
    store.add_usage(&[delta(&a, day, 1)]).await.unwrap();
    let ghost = UsageDelta {
        key: "ghost0000000".parse().unwrap(),
        day,
        count: 1,
    };
    // The ghost violates the foreign key: the whole batch must roll back,
    // the update of the existing row included.
    let batch = [delta(&a, day, 3), ghost];

    assert!(matches!(
        store.add_usage(&batch).await,
        Err(StoreError::Database(_))
    ));

    assert_eq!(store.usage_between(&a.id, day, day).await.unwrap(), 1);
}

async fn concurrent_usage_batches_from_several_handles_add_up_exactly(db: TestDb) {
    let setup = db.open().await;
    let (_, a) = new_key(10);
    let (_, b) = new_key(10);
    setup.insert_key(&a).await.unwrap();
    setup.insert_key(&b).await.unwrap();
    let (d1, d2) = (UtcDay::from_days(20_000), UtcDay::from_days(20_001));
    let mut handles = Vec::new();
    for _ in 0..4 {
        handles.push(db.open().await);
    }

    // Every task writes the same rows, half of them in the opposite
    // order: a store that locked rows in batch order would deadlock.
    let mut tasks = Vec::new();
    for (n, store) in handles.iter().enumerate() {
        for round in 0..25u64 {
            let store = Arc::clone(store);
            let mut batch = vec![
                delta(&a, d1, 1),
                delta(&b, d1, 2),
                delta(&a, d2, round),
                delta(&b, d2, 1),
            ];
            if (n + usize::try_from(round).unwrap()) % 2 == 1 {
                batch.reverse();
            }
            tasks.push(tokio::spawn(async move {
                store.add_usage(&batch).await.unwrap();
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }

    let (writers, rounds) = (4, 25);
    let round_sum: u64 = (0..rounds).sum();
    assert_eq!(
        setup.usage_between(&a.id, d1, d1).await.unwrap(),
        writers * rounds
    );
    assert_eq!(
        setup.usage_between(&b.id, d1, d1).await.unwrap(),
        2 * writers * rounds
    );
    assert_eq!(
        setup.usage_between(&a.id, d2, d2).await.unwrap(),
        writers * round_sum
    );
    assert_eq!(
        setup.usage_between(&b.id, d2, d2).await.unwrap(),
        writers * rounds
    );
}

async fn plans_are_provisioned_once_and_changes_are_listed(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(100);
    store.insert_key(&a).await.unwrap();

    assert!(store.provision_plan(&a.id, Plan::Free, 200).await.unwrap());
    assert!(!store.provision_plan(&a.id, Plan::Free, 300).await.unwrap());
    let stamped = store.get_key(&a.id).await.unwrap().unwrap().updated_at;
    assert!(store
        .keys_changed_since(stamped + 1)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.keys_changed_since(stamped).await.unwrap().len(), 1);
    assert!(store
        .set_plan(&a.id, Plan::Custom, Some(42), 400)
        .await
        .unwrap());
    let ghost = "ghost0000000".parse().unwrap();
    assert!(!store.set_plan(&ghost, Plan::Free, None, 400).await.unwrap());

    let changed = store.keys_changed_since(stamped).await.unwrap();
    assert_eq!(changed.len(), 1);
    let info = &changed[0].info;
    assert_eq!(info.plan, Some(Plan::Custom));
    assert_eq!(info.daily_limit_override, Some(42));
    assert_eq!(info.plan_provisioned_at, Some(400));
    assert!(changed[0].updated_at >= stamped);
    assert_eq!(changed[0].secret_hash.as_bytes(), a.secret_hash.as_bytes());
}

/// Writers' clocks may be off by any amount: `updated_at` is the
/// database's, so a poll that has read a change by a writer an hour fast
/// still sees the next change by a writer an hour slow (the gap that once
/// hid revocations from other nodes).
async fn changes_are_stamped_by_the_database_clock_whatever_the_writer_says(db: TestDb) {
    let store = db.open().await;
    let now = ipintel_store::now_unix();
    let (_, fast) = new_key(now + 3_600);
    let (_, slow) = new_key(now - 3_600);
    let before = store.clock().await.unwrap();
    store.insert_key(&fast).await.unwrap();
    store.insert_key(&slow).await.unwrap();
    assert!(store
        .set_plan(&fast.id, Plan::Professional, None, now + 3_600)
        .await
        .unwrap());
    let seen = store.keys_changed_since(before).await.unwrap();
    let newest = seen.iter().map(|k| k.updated_at).max().unwrap();
    assert!(store.revoke_key(&slow.id, now - 3_600).await.unwrap());
    let after = store.clock().await.unwrap();

    for key in [&fast, &slow] {
        let stored = store.get_key(&key.id).await.unwrap().unwrap();
        assert!(
            (before..=after).contains(&stored.updated_at),
            "{} stamped {} outside the database's {before}..={after}",
            key.id,
            stored.updated_at
        );
    }
    let later = store.keys_changed_since(newest).await.unwrap();
    let revoked = later.iter().find(|k| k.info.id == slow.id).unwrap();
    assert_eq!(revoked.info.revoked_at, Some(now - 3_600));
    assert!(
        (now - 5..=now + 5).contains(&before),
        "the database's clock {before} is this machine's {now}"
    );
}

async fn a_closed_store_fails_with_a_database_error(db: TestDb) {
    let store = db.open().await;
    let (_, a) = new_key(10);
    store.close().await;

    let refused = store.insert_key(&a).await;

    assert!(
        matches!(refused, Err(StoreError::Database(_))),
        "{refused:?}"
    );
}

// === One backend only ===

#[tokio::test]
async fn sqlite_creates_its_directories_and_runs_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested").join("state").join("keys.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(
        path.is_file(),
        "the file and its parent directories are created"
    );
    store.close().await;

    let db = format!("sqlite://{}", path.display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&db)
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn postgres_refuses_a_search_path_without_an_existing_schema() {
    support::run(Backend::Postgres, |db: TestDb| async move {
        let url = db.postgres_url("ipintel_no_such_schema");

        let refused = PostgresStore::open(&url).await;

        let Err(StoreError::Database(err)) = refused else {
            panic!("{refused:?}");
        };
        assert!(err.to_string().contains("search_path"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn postgres_unreachable_fails_within_the_acquire_timeout() {
    // Port 9 (discard) on loopback: nothing listens there.
    let url = PostgresUrl::parse("postgres://ipintel:not-shown@127.0.0.1:9/x").unwrap();
    let started = std::time::Instant::now();

    let refused = PostgresStore::open(&url).await;

    let Err(err) = refused else {
        panic!("connected to port 9")
    };
    assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    assert!(!err.to_string().contains("not-shown"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
}
