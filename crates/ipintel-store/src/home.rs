//! Keeping a network store's connections on the runtime that opened it.
//!
//! A PostgreSQL connection's socket belongs to the runtime on which the
//! pool happened to open it. The HTTP server runs one single-threaded
//! runtime per worker thread, so without care a key looked up on worker 1
//! leaves a pooled connection that only worker 1's reactor drives: other
//! runtimes' queries on it wait for worker 1 to turn, and once the workers
//! stop (the drain at shutdown) the connection is dead, so the final usage
//! flush fails on it. [`HomeRuntime`] sends every call made from another
//! runtime to the one that opened the store, which lives as long as the
//! process.

use std::future::Future;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::task::JoinError;

use crate::day::UtcDay;
use crate::key::KeyId;
use crate::store::{
    KeyInfo, NewKey, NewReport, ReportInsert, ReportRules, Store, StoredKey, StoredReport,
    UsageDelta,
};
use crate::{Plan, StoreError};

/// A store whose every call runs on its home runtime: the one current when
/// it was wrapped.
pub struct HomeRuntime {
    inner: Arc<dyn Store>,
    home: Handle,
}

impl std::fmt::Debug for HomeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeRuntime")
            .field("home", &self.home.id())
            .finish_non_exhaustive()
    }
}

impl HomeRuntime {
    /// Wraps `inner`, making the current runtime its home.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(Self {
            inner,
            home: Handle::current(),
        })
    }

    /// Runs `call` on the home runtime (see [`on_runtime`]).
    async fn run<T, F, Fut>(&self, call: F) -> Result<T, StoreError>
    where
        F: FnOnce(Arc<dyn Store>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        on_runtime(&self.home, call(Arc::clone(&self.inner)))
            .await
            .map_err(|error| StoreError::Task(error.to_string()))?
    }
}

/// Runs `work` on the runtime `home`: in place when the caller is already
/// there, otherwise as a task spawned there, which goes on if the caller
/// stops waiting. Errs only if that task panicked or its runtime is
/// shutting down.
pub(crate) async fn on_runtime<T, F>(home: &Handle, work: F) -> Result<T, JoinError>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    if Handle::try_current().is_ok_and(|here| here.id() == home.id()) {
        return Ok(work.await);
    }
    home.spawn(work).await
}

#[async_trait::async_trait]
impl Store for HomeRuntime {
    async fn insert_key(&self, key: &NewKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.run(|store| async move { store.insert_key(&key).await })
            .await
    }

    async fn get_key(&self, id: &KeyId) -> Result<Option<StoredKey>, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.get_key(&id).await })
            .await
    }

    async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        self.run(|store| async move { store.list_keys().await })
            .await
    }

    async fn revoke_key(&self, id: &KeyId, at: i64) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.revoke_key(&id, at).await })
            .await
    }

    async fn set_plan(
        &self,
        id: &KeyId,
        plan: Plan,
        daily_limit_override: Option<u64>,
        at: i64,
    ) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.set_plan(&id, plan, daily_limit_override, at).await })
            .await
    }

    async fn provision_plan(&self, id: &KeyId, plan: Plan, at: i64) -> Result<bool, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.provision_plan(&id, plan, at).await })
            .await
    }

    async fn add_usage(&self, deltas: &[UsageDelta]) -> Result<(), StoreError> {
        let deltas = deltas.to_vec();
        self.run(|store| async move { store.add_usage(&deltas).await })
            .await
    }

    async fn usage_between(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<u64, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.usage_between(&id, first, last).await })
            .await
    }

    async fn usage_by_day(
        &self,
        id: &KeyId,
        first: UtcDay,
        last: UtcDay,
    ) -> Result<Vec<(UtcDay, u64)>, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.usage_by_day(&id, first, last).await })
            .await
    }

    async fn usage_for_day(&self, day: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError> {
        self.run(|store| async move { store.usage_for_day(day).await })
            .await
    }

    async fn keys_changed_since(&self, since: i64) -> Result<Vec<StoredKey>, StoreError> {
        self.run(|store| async move { store.keys_changed_since(since).await })
            .await
    }

    async fn clock(&self) -> Result<i64, StoreError> {
        self.run(|store| async move { store.clock().await }).await
    }

    async fn insert_report(
        &self,
        report: &NewReport,
        rules: &ReportRules,
    ) -> Result<ReportInsert, StoreError> {
        let (report, rules) = (report.clone(), *rules);
        self.run(|store| async move { store.insert_report(&report, &rules).await })
            .await
    }

    async fn reports_since(&self, since: i64) -> Result<Vec<StoredReport>, StoreError> {
        self.run(|store| async move { store.reports_since(since).await })
            .await
    }

    async fn reports_by_key(
        &self,
        id: &KeyId,
        limit: u32,
    ) -> Result<Vec<StoredReport>, StoreError> {
        let id = id.clone();
        self.run(|store| async move { store.reports_by_key(&id, limit).await })
            .await
    }

    async fn reports_after(&self, after: i64, limit: u32) -> Result<Vec<StoredReport>, StoreError> {
        self.run(|store| async move { store.reports_after(after, limit).await })
            .await
    }

    async fn reports_with_ids(&self, ids: &[i64]) -> Result<Vec<StoredReport>, StoreError> {
        let ids = ids.to_vec();
        self.run(|store| async move { store.reports_with_ids(&ids).await })
            .await
    }

    async fn close(&self) {
        // An error means the home runtime is gone, and the pool with it.
        let _ = self
            .run(|store| async move {
                store.close().await;
                Ok(())
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SqliteStore;

    /// A call from another runtime runs on the home runtime; one from home
    /// runs in place.
    #[test]
    fn calls_from_another_runtime_run_at_home() {
        let home = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("home.db");
        let store = home.block_on(async {
            let inner: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.unwrap());
            HomeRuntime::wrap(inner)
        });
        let home_id = home.handle().id();

        let other = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ran_on = other.block_on(async {
            let probe = RuntimeProbe::default();
            let wrapped = HomeRuntime {
                inner: Arc::new(probe.clone()),
                home: home.handle().clone(),
            };
            wrapped.clock().await.unwrap();
            probe.seen()
        });
        assert_eq!(ran_on, Some(home_id));
        let now = other.block_on(store.clock()).unwrap();
        assert!(now > 1_700_000_000);
        drop(other);
        // The other runtime is gone; the store still works from home.
        assert_eq!(home.block_on(store.clock()).unwrap() / 10, now / 10);
    }

    /// A store that records the runtime its `clock` ran on.
    #[derive(Clone, Default)]
    struct RuntimeProbe(Arc<std::sync::Mutex<Option<tokio::runtime::Id>>>);

    impl RuntimeProbe {
        fn seen(&self) -> Option<tokio::runtime::Id> {
            *self.0.lock().unwrap()
        }
    }

    #[async_trait::async_trait]
    impl Store for RuntimeProbe {
        async fn clock(&self) -> Result<i64, StoreError> {
            *self.0.lock().unwrap() = Some(Handle::current().id());
            Ok(0)
        }
        async fn insert_key(&self, _: &NewKey) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn get_key(&self, _: &KeyId) -> Result<Option<StoredKey>, StoreError> {
            unreachable!()
        }
        async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
            unreachable!()
        }
        async fn revoke_key(&self, _: &KeyId, _: i64) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn set_plan(
            &self,
            _: &KeyId,
            _: Plan,
            _: Option<u64>,
            _: i64,
        ) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn provision_plan(&self, _: &KeyId, _: Plan, _: i64) -> Result<bool, StoreError> {
            unreachable!()
        }
        async fn add_usage(&self, _: &[UsageDelta]) -> Result<(), StoreError> {
            unreachable!()
        }
        async fn usage_between(&self, _: &KeyId, _: UtcDay, _: UtcDay) -> Result<u64, StoreError> {
            unreachable!()
        }
        async fn usage_by_day(
            &self,
            _: &KeyId,
            _: UtcDay,
            _: UtcDay,
        ) -> Result<Vec<(UtcDay, u64)>, StoreError> {
            unreachable!()
        }
        async fn usage_for_day(&self, _: UtcDay) -> Result<Vec<(KeyId, u64)>, StoreError> {
            unreachable!()
        }
        async fn keys_changed_since(&self, _: i64) -> Result<Vec<StoredKey>, StoreError> {
            unreachable!()
        }
        async fn insert_report(
            &self,
            _: &NewReport,
            _: &ReportRules,
        ) -> Result<ReportInsert, StoreError> {
            unreachable!()
        }
        async fn reports_since(&self, _: i64) -> Result<Vec<StoredReport>, StoreError> {
            unreachable!()
        }
        async fn reports_by_key(&self, _: &KeyId, _: u32) -> Result<Vec<StoredReport>, StoreError> {
            unreachable!()
        }
        async fn reports_after(&self, _: i64, _: u32) -> Result<Vec<StoredReport>, StoreError> {
            unreachable!()
        }
        async fn reports_with_ids(&self, _: &[i64]) -> Result<Vec<StoredReport>, StoreError> {
            unreachable!()
        }
        async fn close(&self) {}
    }
}
