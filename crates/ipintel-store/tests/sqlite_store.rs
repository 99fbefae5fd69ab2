//! The SQLite store on real files in a temporary directory.

// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ipintel_store::{
    key, Accounts, NewKey, Plan, PlanLimits, SqliteStore, Store, UsageDelta, UtcDay,
};
use sqlx::Connection;

async fn raw_connection(path: &Path) -> sqlx::SqliteConnection {
    let url = format!("sqlite://{}", path.display());
    sqlx::SqliteConnection::connect(&url).await.unwrap()
}

fn db_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("state").join("keys.db")
}

fn new_key(created_at: i64) -> (key::PresentedKey, NewKey) {
    let presented = key::generate();
    let new = NewKey {
        id: presented.id.clone(),
        secret_hash: presented.secret_hash(),
        label: Some("test".into()),
        plan: None,
        daily_limit_override: None,
        created_at,
    };
    (presented, new)
}

#[tokio::test]
async fn migrations_apply_on_a_new_file_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(
        path.is_file(),
        "the file and its parent directories are created"
    );
    let (_, new) = new_key(1_000);
    store.insert_key(&new).await.unwrap();
    store.close().await;

    let store = SqliteStore::open(&path).await.unwrap();
    let stored = store.get_key(&new.id).await.unwrap().unwrap();
    assert_eq!(stored.info.id, new.id);
    assert_eq!(stored.info.label.as_deref(), Some("test"));
    assert_eq!(stored.info.plan, None);
    assert_eq!(stored.updated_at, 1_000);
    store.close().await;

    let mut conn = raw_connection(&path).await;
    let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let files = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .count();
    assert_eq!(
        applied,
        i64::try_from(files).unwrap(),
        "every migration applied"
    );
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn keys_are_created_listed_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(&db_path(&dir)).await.unwrap());
    let accounts = Accounts::open(store.clone(), PlanLimits::default())
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

#[tokio::test]
async fn a_key_is_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = Arc::new(SqliteStore::open(&path).await.unwrap());
    let accounts = Accounts::open(store.clone(), PlanLimits::default())
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

    // Every byte the database wrote: main file, WAL and shared memory.
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(path.parent().unwrap()).unwrap() {
        bytes.extend(std::fs::read(entry.unwrap().path()).unwrap());
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(
        contains(info.id.as_str().as_bytes()),
        "the scan must see stored data"
    );
    assert!(contains(
        key::parse(&text).unwrap().secret_hash().as_bytes()
    ));
    assert!(
        !contains(secret.as_bytes()),
        "the secret is in the database files"
    );
    assert!(!contains(text.as_bytes()));

    // And through SQL: no column of any row holds the secret.
    let mut conn = raw_connection(&path).await;
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT quote(id) || quote(secret_hash) || quote(label) || quote(plan) FROM api_keys",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].contains(&secret));
}

#[tokio::test]
async fn usage_deltas_add_up_per_key_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).await.unwrap();
    let (_, a) = new_key(10);
    let (_, b) = new_key(10);
    store.insert_key(&a).await.unwrap();
    store.insert_key(&b).await.unwrap();
    let d1 = UtcDay::from_unix(1_791_200_000); // 2026-10-05
    let d2 = UtcDay::from_days(d1.days() + 1);
    let delta = |key: &NewKey, day, count| UsageDelta {
        key: key.id.clone(),
        day,
        count,
    };

    store
        .add_usage(&[delta(&a, d1, 5), delta(&b, d1, 1)])
        .await
        .unwrap();
    store
        .add_usage(&[delta(&a, d1, 7), delta(&a, d2, 2)])
        .await
        .unwrap();

    assert_eq!(store.usage_between(&a.id, d1, d1).await.unwrap(), 12);
    assert_eq!(store.usage_between(&a.id, d1, d2).await.unwrap(), 14);
    assert_eq!(store.usage_between(&b.id, d2, d2).await.unwrap(), 0);
    let mut day1 = store.usage_for_day(d1).await.unwrap();
    day1.sort();
    let mut expected = vec![(a.id.clone(), 12), (b.id.clone(), 1)];
    expected.sort();
    assert_eq!(day1, expected);
}

#[tokio::test]
async fn usage_by_day_lists_one_keys_days_in_order_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).await.unwrap();
    let (_, a) = new_key(10);
    let (_, b) = new_key(10);
    store.insert_key(&a).await.unwrap();
    store.insert_key(&b).await.unwrap();
    let day = |n: i64| UtcDay::from_days(20_000 + n);
    let deltas = [(&a, 5, 3), (&a, 1, 4), (&a, 9, 1), (&b, 2, 8), (&a, 0, 2)];
    let deltas: Vec<UsageDelta> = deltas
        .iter()
        .map(|(key, n, count)| UsageDelta {
            key: key.id.clone(),
            day: day(*n),
            count: *count,
        })
        .collect();
    store.add_usage(&deltas).await.unwrap();

    let listed = store.usage_by_day(&a.id, day(1), day(5)).await.unwrap();

    assert_eq!(listed, vec![(day(1), 4), (day(5), 3)]);
    let none = store.usage_by_day(&b.id, day(3), day(9)).await.unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn a_failed_usage_batch_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).await.unwrap();
    let (_, a) = new_key(10);
    store.insert_key(&a).await.unwrap();
    let day = UtcDay::from_days(20_000);
    let ghost: ipintel_store::KeyId = "ghost0000000".parse().unwrap();
    let batch = [
        UsageDelta {
            key: a.id.clone(),
            day,
            count: 3,
        },
        // Violates the foreign key: the whole transaction must roll back.
        UsageDelta {
            key: ghost,
            day,
            count: 1,
        },
    ];
    assert!(store.add_usage(&batch).await.is_err());
    assert_eq!(store.usage_between(&a.id, day, day).await.unwrap(), 0);
}

#[tokio::test]
async fn plans_are_provisioned_once_and_changes_are_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&db_path(&dir)).await.unwrap();
    let (_, a) = new_key(100);
    store.insert_key(&a).await.unwrap();

    assert!(store.provision_plan(&a.id, Plan::Free, 200).await.unwrap());
    assert!(!store.provision_plan(&a.id, Plan::Free, 300).await.unwrap());
    assert!(store.keys_changed_since(201).await.unwrap().is_empty());
    assert!(store
        .set_plan(&a.id, Plan::Custom, Some(42), 400)
        .await
        .unwrap());

    let changed = store.keys_changed_since(201).await.unwrap();
    assert_eq!(changed.len(), 1);
    let info = &changed[0].info;
    assert_eq!(info.plan, Some(Plan::Custom));
    assert_eq!(info.daily_limit_override, Some(42));
    assert_eq!(info.plan_provisioned_at, Some(400));
    assert_eq!(changed[0].updated_at, 400);
}
