//! The request-path meter on a real store, SQLite and PostgreSQL (see
//! `support/mod.rs`).

// Helpers outside `#[test]` functions unwrap too (clippy.toml allows it in tests).
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ipintel_store::{
    key, now_unix, Accounts, AuthError, KeyHandle, NewKey, Plan, PlanLimits, Store, StoreError,
    UtcDay,
};
use sqlx::Connection;
use support::{store_tests, Backend, TestDb};
use tokio_util::sync::CancellationToken;

store_tests!(
    the_101st_lookup_of_a_free_key_is_refused,
    a_batch_larger_than_the_rest_is_refused_whole,
    the_first_counted_lookup_provisions_the_free_plan,
    the_quota_survives_a_restart,
    a_key_loaded_after_start_brings_its_count,
    concurrent_lookups_never_exceed_the_limit,
    the_quota_resets_at_utc_midnight,
    usage_reports_today_and_the_month_including_unwritten_counts,
    wrong_secrets_unknown_ids_and_garbage_are_refused,
    a_cached_key_needs_no_database,
    a_revocation_by_another_process_is_picked_up_by_the_poll,
    a_plan_change_by_another_process_changes_the_limit,
    a_key_created_elsewhere_is_found_after_its_miss_is_cleared,
    a_failed_flush_keeps_its_counts_for_the_next,
    a_graceful_shutdown_writes_every_count,
    the_background_task_flushes_within_seconds,
    a_failed_plan_write_does_not_count_usage_twice,
    admit_authenticates_and_counts,
);

struct Fixture {
    db: TestDb,
    store: Arc<dyn Store>,
    accounts: Arc<Accounts>,
}

async fn fixture(db: TestDb) -> Fixture {
    let (store, accounts) = second_handle(&db).await;
    Fixture {
        db,
        store,
        accounts,
    }
}

/// An independent handle on the same database, as the CLI (another
/// process) would open.
async fn second_handle(db: &TestDb) -> (Arc<dyn Store>, Arc<Accounts>) {
    let store = db.open().await;
    let accounts = Accounts::open(Arc::clone(&store), PlanLimits::default())
        .await
        .unwrap();
    (store, accounts)
}

async fn new_free_key(accounts: &Accounts) -> (String, KeyHandle) {
    let (_, text) = accounts.create_key(None, None).await.unwrap();
    let handle = accounts.authenticate(&text).await.unwrap();
    (text, handle)
}

fn consume_all(accounts: &Accounts, key: &KeyHandle, times: u64, now: i64) {
    for i in 0..times {
        let quota = accounts.consume(key, 1, now).unwrap();
        assert_eq!(quota.remaining, quota.limit - i - 1);
    }
}

fn assert_quota_exceeded(result: Result<ipintel_store::Quota, AuthError>, now: i64) {
    match result {
        Err(AuthError::QuotaExceeded {
            quota,
            retry_after_secs,
        }) => {
            assert_eq!(quota.remaining, 0);
            let until_midnight = UtcDay::from_unix(now).next_start_unix() - now;
            assert_eq!(quota.reset_unix, now + until_midnight);
            assert!(retry_after_secs >= 1);
            assert!(retry_after_secs <= u64::try_from(until_midnight).unwrap());
        }
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
}

async fn wait_until(mut done: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

async fn the_101st_lookup_of_a_free_key_is_refused(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    assert_eq!(key.plan(), Plan::Free);
    assert_eq!(key.daily_limit(), 100);

    consume_all(&f.accounts, &key, 100, now);
    assert_quota_exceeded(f.accounts.consume(&key, 1, now), now);
    assert_eq!(
        f.accounts.quota(&key, now).remaining,
        0,
        "a refusal counts nothing"
    );

    f.accounts.flush().await.unwrap();
    let day = UtcDay::from_unix(now);
    assert_eq!(
        f.store.usage_between(key.id(), day, day).await.unwrap(),
        100
    );
}

async fn a_batch_larger_than_the_rest_is_refused_whole(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    f.accounts.consume(&key, 95, now).unwrap();
    match f.accounts.consume(&key, 6, now) {
        Err(AuthError::QuotaExceeded { quota, .. }) => assert_eq!(quota.remaining, 5),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let quota = f.accounts.quota(&key, now);
    assert_eq!(quota.remaining, 5);
    assert_eq!(f.accounts.consume(&key, 5, now).unwrap().remaining, 0);
}

async fn the_first_counted_lookup_provisions_the_free_plan(db: TestDb) {
    let f = fixture(db).await;
    let (info, text) = f.accounts.create_key(None, None).await.unwrap();
    let key = f.accounts.authenticate(&text).await.unwrap();
    f.accounts.flush().await.unwrap();
    let stored = f.store.get_key(&info.id).await.unwrap().unwrap();
    assert_eq!(
        stored.info.plan, None,
        "authentication alone provisions nothing"
    );

    f.accounts.consume(&key, 1, now_unix()).unwrap();
    f.accounts.flush().await.unwrap();
    let stored = f.store.get_key(&info.id).await.unwrap().unwrap();
    assert_eq!(stored.info.plan, Some(Plan::Free));
    assert!(stored.info.plan_provisioned_at.is_some());
}

async fn the_quota_survives_a_restart(db: TestDb) {
    let f = fixture(db).await;
    let (text, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    consume_all(&f.accounts, &key, 100, now);
    f.accounts.flush().await.unwrap();
    drop(key);
    let Fixture {
        db,
        store,
        accounts,
    } = f;
    drop(accounts);
    store.close().await;

    // Opening loads today's counts, so the key is already cached.
    let (_, reopened) = second_handle(&db).await;
    let key = reopened.authenticate(&text).await.unwrap();
    assert_quota_exceeded(reopened.consume(&key, 1, now), now);
    let usage = reopened.usage(&key, now).await.unwrap();
    assert_eq!(usage.today, 100);
    assert_eq!(usage.this_month, 100);
}

async fn a_key_loaded_after_start_brings_its_count(db: TestDb) {
    let f = fixture(db).await;
    // Opened before the key has any usage: it will load the key lazily.
    let (_, other) = second_handle(&f.db).await;
    let (text, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    consume_all(&f.accounts, &key, 100, now);
    f.accounts.flush().await.unwrap();

    let key = other.authenticate(&text).await.unwrap();
    assert_quota_exceeded(other.consume(&key, 1, now), now);
}

async fn concurrent_lookups_never_exceed_the_limit(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let accounts = f.accounts.clone();
            let key = key.clone();
            tokio::spawn(async move {
                let mut admitted = 0u64;
                for _ in 0..50 {
                    match accounts.consume(&key, 1, now) {
                        Ok(_) => admitted += 1,
                        Err(AuthError::QuotaExceeded { .. }) => {}
                        Err(other) => panic!("unexpected {other:?}"),
                    }
                    tokio::task::yield_now().await;
                }
                admitted
            })
        })
        .collect();
    let mut admitted = 0;
    for task in tasks {
        admitted += task.await.unwrap();
    }
    assert_eq!(admitted, 100);

    f.accounts.flush().await.unwrap();
    let day = UtcDay::from_unix(now);
    assert_eq!(
        f.store.usage_between(key.id(), day, day).await.unwrap(),
        100
    );
}

async fn the_quota_resets_at_utc_midnight(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let today = UtcDay::from_unix(now_unix());
    let last_second = today.next_start_unix() - 1;
    let midnight = today.next_start_unix();

    consume_all(&f.accounts, &key, 100, last_second);
    match f.accounts.consume(&key, 1, last_second) {
        Err(AuthError::QuotaExceeded {
            retry_after_secs, ..
        }) => assert_eq!(retry_after_secs, 1),
        other => panic!("expected QuotaExceeded, got {other:?}"),
    }
    let quota = f.accounts.consume(&key, 1, midnight).unwrap();
    assert_eq!(quota.remaining, 99);
    assert_eq!(quota.reset_unix, midnight + 86_400);

    // Both days' counts reach the store under their own day.
    f.accounts.flush().await.unwrap();
    let tomorrow = UtcDay::from_unix(midnight);
    assert_eq!(
        f.store.usage_between(key.id(), today, today).await.unwrap(),
        100
    );
    assert_eq!(
        f.store
            .usage_between(key.id(), tomorrow, tomorrow)
            .await
            .unwrap(),
        1
    );
}

async fn usage_reports_today_and_the_month_including_unwritten_counts(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    // Two consecutive days of one month, in the future of the real clock.
    let (first_of_month, _) =
        UtcDay::from_days(UtcDay::from_unix(now_unix()).days() + 40).month_bounds();
    let day1 = first_of_month.start_unix() + 3_600;
    let day2 = day1 + 86_400;

    f.accounts.consume(&key, 30, day1).unwrap();
    f.accounts.flush().await.unwrap();
    f.accounts.consume(&key, 4, day2).unwrap();
    let usage = f.accounts.usage(&key, day2).await.unwrap();
    assert_eq!(usage.today, 4);
    assert_eq!(usage.this_month, 34);
    assert_eq!(usage.plan, Plan::Free);
    assert_eq!(usage.daily_limit, 100);
    assert_eq!(usage.reset_unix, first_of_month.start_unix() + 2 * 86_400);
    let json = serde_json::to_value(&usage).unwrap();
    assert_eq!(json["key_id"], key.id().as_str());
    assert_eq!(json["this_month"], 34);
}

async fn wrong_secrets_unknown_ids_and_garbage_are_refused(db: TestDb) {
    let f = fixture(db).await;
    let (text, _) = new_free_key(&f.accounts).await;
    let mut wrong = text.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'a' { 'b' } else { 'a' });

    assert!(matches!(
        f.accounts.authenticate(&wrong).await,
        Err(AuthError::UnknownKey)
    ));
    let unknown = key::generate().expose_key_text();
    assert!(matches!(
        f.accounts.authenticate(&unknown).await,
        Err(AuthError::UnknownKey)
    ));
    for garbage in ["", "Bearer x", &text[..text.len() - 1], &format!("{text} ")] {
        assert!(matches!(
            f.accounts.authenticate(garbage).await,
            Err(AuthError::Malformed)
        ));
    }
}

async fn a_cached_key_needs_no_database(db: TestDb) {
    let f = fixture(db).await;
    let (text, _) = new_free_key(&f.accounts).await;
    let unknown = key::generate().expose_key_text();
    assert!(matches!(
        f.accounts.authenticate(&unknown).await,
        Err(AuthError::UnknownKey)
    ));
    f.store.close().await;

    let key = f.accounts.authenticate(&text).await.unwrap();
    f.accounts.consume(&key, 1, now_unix()).unwrap();
    // The miss is remembered: no database round trip, so no store error.
    assert!(matches!(
        f.accounts.authenticate(&unknown).await,
        Err(AuthError::UnknownKey)
    ));
    let fresh = key::generate().expose_key_text();
    assert!(matches!(
        f.accounts.authenticate(&fresh).await,
        Err(AuthError::Unavailable(_))
    ));
}

async fn a_revocation_by_another_process_is_picked_up_by_the_poll(db: TestDb) {
    let f = fixture(db).await;
    let (text, key) = new_free_key(&f.accounts).await;
    let shutdown = CancellationToken::new();
    let task = f.accounts.spawn_background(shutdown.clone());

    let (_, cli) = second_handle(&f.db).await;
    assert!(cli.revoke_key(key.id()).await.unwrap());
    let accounts = f.accounts.clone();
    let picked_up =
        wait_until(async || matches!(accounts.authenticate(&text).await, Err(AuthError::Revoked)))
            .await;
    assert!(picked_up, "revocation not seen within 8 s");
    assert!(matches!(
        f.accounts.consume(&key, 1, now_unix()),
        Err(AuthError::Revoked)
    ));

    shutdown.cancel();
    task.await.unwrap();
}

async fn a_plan_change_by_another_process_changes_the_limit(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let (_, cli) = second_handle(&f.db).await;
    assert!(cli.set_plan(key.id(), Plan::Custom, Some(3)).await.unwrap());
    assert_eq!(key.daily_limit(), 100, "not before the poll");

    f.accounts.poll_changes().await.unwrap();
    assert_eq!(key.plan(), Plan::Custom);
    assert_eq!(key.daily_limit(), 3);
    let now = now_unix();
    f.accounts.consume(&key, 3, now).unwrap();
    assert_quota_exceeded(f.accounts.consume(&key, 1, now), now);
}

async fn a_key_created_elsewhere_is_found_after_its_miss_is_cleared(db: TestDb) {
    let f = fixture(db).await;
    let presented = key::generate();
    let text = presented.expose_key_text();
    assert!(matches!(
        f.accounts.authenticate(&text).await,
        Err(AuthError::UnknownKey)
    ));

    let (cli_store, _) = second_handle(&f.db).await;
    let new = NewKey {
        id: presented.id.clone(),
        secret_hash: presented.secret_hash(),
        label: None,
        plan: None,
        daily_limit_override: None,
        created_at: now_unix(),
    };
    cli_store.insert_key(&new).await.unwrap();
    assert!(
        matches!(
            f.accounts.authenticate(&text).await,
            Err(AuthError::UnknownKey)
        ),
        "the miss is remembered"
    );
    f.accounts.poll_changes().await.unwrap();
    assert!(f.accounts.authenticate(&text).await.is_ok());
}

async fn a_failed_flush_keeps_its_counts_for_the_next(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    let refusal = f.db.refuse("INSERT", "usage_daily").await;

    f.accounts.consume(&key, 10, now).unwrap();
    assert!(f.accounts.flush().await.is_err());
    f.accounts.consume(&key, 5, now).unwrap();
    assert!(f.accounts.flush().await.is_err());
    assert_eq!(f.accounts.usage(&key, now).await.unwrap().this_month, 15);

    refusal.lift().await;
    f.accounts.flush().await.unwrap();
    let day = UtcDay::from_unix(now);
    assert_eq!(f.store.usage_between(key.id(), day, day).await.unwrap(), 15);
    assert_eq!(f.accounts.usage(&key, now).await.unwrap().this_month, 15);
    let stored = f.store.get_key(key.id()).await.unwrap().unwrap();
    assert_eq!(stored.info.plan, Some(Plan::Free));
}

async fn a_graceful_shutdown_writes_every_count(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let shutdown = CancellationToken::new();
    let task = f.accounts.spawn_background(shutdown.clone());
    let now = now_unix();
    f.accounts.consume(&key, 7, now).unwrap();
    shutdown.cancel();
    task.await.unwrap();

    let day = UtcDay::from_unix(now);
    assert_eq!(f.store.usage_between(key.id(), day, day).await.unwrap(), 7);
}

async fn the_background_task_flushes_within_seconds(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let shutdown = CancellationToken::new();
    let task = f.accounts.spawn_background(shutdown.clone());
    let now = now_unix();
    f.accounts.consume(&key, 3, now).unwrap();
    let day = UtcDay::from_unix(now);
    let store = f.store.clone();
    let id = key.id().clone();
    let written = wait_until(async || store.usage_between(&id, day, day).await.unwrap() == 3).await;
    assert!(written, "counts not written within 8 s");
    shutdown.cancel();
    task.await.unwrap();
}

async fn a_failed_plan_write_does_not_count_usage_twice(db: TestDb) {
    let f = fixture(db).await;
    let (_, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    let refusal = f.db.refuse("UPDATE", "api_keys").await;

    f.accounts.consume(&key, 9, now).unwrap();
    assert!(f.accounts.flush().await.is_err(), "the plan write fails");
    refusal.lift().await;
    f.accounts.flush().await.unwrap();

    let day = UtcDay::from_unix(now);
    assert_eq!(f.store.usage_between(key.id(), day, day).await.unwrap(), 9);
    let stored = f.store.get_key(key.id()).await.unwrap().unwrap();
    assert_eq!(stored.info.plan, Some(Plan::Free));
}

async fn admit_authenticates_and_counts(db: TestDb) {
    let f = fixture(db).await;
    let (text, key) = new_free_key(&f.accounts).await;
    let now = now_unix();
    let (admitted, quota) = f.accounts.admit(&text, 2, now).await.unwrap();
    assert_eq!(admitted.id(), key.id());
    assert_eq!(quota.remaining, 98);
    assert!(matches!(
        f.accounts.admit(&text, 99, now).await,
        Err(AuthError::QuotaExceeded { .. })
    ));
    assert!(matches!(
        f.accounts.admit("nope", 1, now).await,
        Err(AuthError::Malformed)
    ));
}

/// A database that stops answering mid-statement (here: a lock another
/// session holds) holds neither a usage report nor an unseen key's request
/// for long: each gives up after 3 s, and both work again once it answers.
/// PostgreSQL only: SQLite gives up on a lock by itself (busy timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stalled_database_holds_usage_and_unseen_keys_only_briefly() {
    support::run(Backend::Postgres, |db: TestDb| async move {
        let f = fixture(db).await;
        let (_, key) = new_free_key(&f.accounts).await;
        let now = now_unix();
        f.accounts.consume(&key, 5, now).unwrap();
        f.accounts.flush().await.unwrap();
        let (_, elsewhere) = second_handle(&f.db).await;
        let (_, unseen) = elsewhere.create_key(None, None).await.unwrap();

        let mut blocker = f.db.postgres_connection().await;
        let mut open = blocker.begin().await.unwrap();
        sqlx::query("SELECT count FROM usage_daily WHERE key_id = $1 FOR UPDATE")
            .bind(key.id().as_str())
            .execute(&mut *open)
            .await
            .unwrap();
        f.accounts.consume(&key, 3, now).unwrap();
        let accounts = Arc::clone(&f.accounts);
        let stuck_flush = tokio::spawn(async move { accounts.flush().await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let started = Instant::now();
        let usage = f.accounts.usage(&key, now).await;
        assert!(matches!(usage, Err(StoreError::TimedOut(_))), "{usage:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        sqlx::query("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *open)
            .await
            .unwrap();
        let started = Instant::now();
        let refused = f.accounts.authenticate(&unseen).await;
        assert!(
            matches!(
                refused,
                Err(AuthError::Unavailable(StoreError::TimedOut(_)))
            ),
            "{refused:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );

        open.rollback().await.unwrap();
        stuck_flush.await.unwrap().unwrap();
        assert_eq!(f.accounts.usage(&key, now).await.unwrap().today, 8);
        assert!(f.accounts.authenticate(&unseen).await.is_ok());
    })
    .await;
}

/// A usage flush stuck on the database does not stop the background task
/// from polling key changes: a revocation made elsewhere still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_stuck_flush_does_not_hold_up_the_key_poll() {
    support::run(Backend::Postgres, |db: TestDb| async move {
        let f = fixture(db).await;
        let (_, key) = new_free_key(&f.accounts).await;
        let (revoked_text, revoked) = new_free_key(&f.accounts).await;
        let now = now_unix();
        f.accounts.consume(&key, 1, now).unwrap();
        f.accounts.flush().await.unwrap();

        let mut blocker = f.db.postgres_connection().await;
        let mut open = blocker.begin().await.unwrap();
        sqlx::query("SELECT count FROM usage_daily WHERE key_id = $1 FOR UPDATE")
            .bind(key.id().as_str())
            .execute(&mut *open)
            .await
            .unwrap();
        f.accounts.consume(&key, 1, now).unwrap();
        let stop = CancellationToken::new();
        let background = f.accounts.spawn_background(stop.clone());

        let (_, elsewhere) = second_handle(&f.db).await;
        assert!(elsewhere.revoke_key(revoked.id()).await.unwrap());
        let seen = wait_until(async || {
            matches!(
                f.accounts.authenticate(&revoked_text).await,
                Err(AuthError::Revoked)
            )
        })
        .await;
        assert!(
            seen,
            "the revocation did not arrive while the flush was stuck"
        );

        open.rollback().await.unwrap();
        stop.cancel();
        background.await.unwrap();
        assert_eq!(
            f.store
                .usage_between(key.id(), UtcDay::from_unix(now), UtcDay::from_unix(now))
                .await
                .unwrap(),
            2
        );
    })
    .await;
}
