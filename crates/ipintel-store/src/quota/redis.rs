//! The shared day counters in Redis and the only ways they change.
//!
//! One counter per key and UTC day, `{prefix}quota:{key_id}:{YYYY-MM-DD}`,
//! created with a two-day expiry and changed only by the small scripts
//! below, each atomic on the server. A counter that is missing (a new day,
//! or a Redis restart, since the server keeps nothing) is never created by
//! a take: the caller seeds it first from what the store knows, so a
//! restart does not hand out a fresh quota.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, Script};
use tokio::runtime::Handle;

use super::url::RedisUrl;
use crate::day::UtcDay;
use crate::home::on_runtime;
use crate::key::KeyId;

/// Counters outlive their day by a day, so a late flush or return still
/// finds yesterday's, and Redis frees them without being asked.
const COUNTER_TTL_SECS: u64 = 2 * 86_400;

/// Adds `ARGV[1]` (wanted) but at most what keeps the total within
/// `ARGV[3]` (limit); refuses unless at least `ARGV[2]` fits. Replies
/// `{granted, total}`, or `{-1, 0}` when the counter is missing.
const TAKE: &str = r"
local current = redis.call('GET', KEYS[1])
if not current then return {-1, 0} end
current = tonumber(current)
local room = tonumber(ARGV[3]) - current
local grant = math.min(tonumber(ARGV[1]), room)
if grant < tonumber(ARGV[2]) or grant <= 0 then return {0, current} end
return {grant, redis.call('INCRBY', KEYS[1], grant)}
";

/// Adds `ARGV[1]` whatever the limit (lookups admitted while Redis was
/// unreachable). Replies the new total, or -1 when the counter is missing.
const ADD: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
return redis.call('INCRBY', KEYS[1], ARGV[1])
";

/// Takes back up to `ARGV[1]` (an unspent block), never below zero.
/// Replies what was taken back.
const GIVE_BACK: &str = r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local back = math.min(current, tonumber(ARGV[1]))
if back <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], back)
return back
";

/// Why Redis gave no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RedisFailure {
    /// No answer within the timeout.
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// The connection or the command failed.
    #[error("{0}")]
    Redis(#[from] redis::RedisError),
    /// The task running the call on the home runtime failed.
    #[error("the Redis task failed: {0}")]
    Task(String),
}

/// What a take did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// `granted` were added; the counter now stands at `total`.
    Granted { granted: u64, total: u64 },
    /// Too little room; nothing was added. The counter stands at `total`.
    Refused { total: u64 },
    /// The counter does not exist: seed it, then take again.
    Missing,
}

/// The connection to Redis and the counters' names.
pub(crate) struct RedisCounters {
    connection: ConnectionManager,
    /// The runtime every call runs on (see [`RedisCounters::bounded`]).
    home: Handle,
    prefix: String,
    timeout: Duration,
    take: Script,
    add: Script,
    give_back: Script,
}

impl RedisCounters {
    /// A client for `url` that connects on first use and reconnects by
    /// itself, on the current runtime. Fails only on a URL the client
    /// cannot use.
    ///
    /// # Panics
    /// Outside a Tokio runtime.
    pub(crate) fn new(
        url: &RedisUrl,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, RedisFailure> {
        let client = Client::open(url.expose())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(1));
        Ok(Self {
            connection: ConnectionManager::new_lazy_with_config(client, config)?,
            home: Handle::current(),
            prefix: prefix.to_owned(),
            timeout,
            take: Script::new(TAKE),
            add: Script::new(ADD),
            give_back: Script::new(GIVE_BACK),
        })
    }

    fn counter(&self, key: &KeyId, day: UtcDay) -> String {
        format!("{}quota:{}:{day}", self.prefix, key.as_str())
    }

    /// Runs `call` within the timeout, on the home runtime. The client
    /// (re)connects on the runtime of the call that finds it disconnected,
    /// and its connection lives on that runtime's tasks: a connection
    /// made on an HTTP worker's runtime would die with the worker when the
    /// server stops, just before the unspent blocks are given back.
    async fn bounded<T, F>(&self, call: F) -> Result<T, RedisFailure>
    where
        T: Send + 'static,
        F: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        match tokio::time::timeout(self.timeout, on_runtime(&self.home, call)).await {
            Ok(Ok(answer)) => Ok(answer?),
            Ok(Err(failed)) => Err(RedisFailure::Task(failed.to_string())),
            Err(_) => Err(RedisFailure::Timeout(self.timeout)),
        }
    }

    /// Runs `script` on the counter `counter` with `args`, within the
    /// timeout, on the home runtime.
    async fn run_script<T>(
        &self,
        script: &Script,
        counter: String,
        args: Vec<u64>,
    ) -> Result<T, RedisFailure>
    where
        T: redis::FromRedisValue + Send + 'static,
    {
        let (script, mut connection) = (script.clone(), self.connection.clone());
        self.bounded(async move {
            let mut invocation = script.key(counter);
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async(&mut connection).await
        })
        .await
    }

    /// Asks for `wanted` lookups of `key` on `day`, at least `at_least`,
    /// keeping the total within `limit`.
    pub(crate) async fn take(
        &self,
        key: &KeyId,
        day: UtcDay,
        wanted: u64,
        at_least: u64,
        limit: u64,
    ) -> Result<Take, RedisFailure> {
        let (granted, total): (i64, i64) = self
            .run_script(
                &self.take,
                self.counter(key, day),
                vec![wanted, at_least, limit],
            )
            .await?;
        let total = u64::try_from(total).unwrap_or(0);
        Ok(match u64::try_from(granted) {
            Err(_) => Take::Missing,
            Ok(0) => Take::Refused { total },
            Ok(granted) => Take::Granted { granted, total },
        })
    }

    /// Adds `n` to an existing counter; `None` when it is missing.
    pub(crate) async fn add(
        &self,
        key: &KeyId,
        day: UtcDay,
        n: u64,
    ) -> Result<Option<u64>, RedisFailure> {
        let total: i64 = self
            .run_script(&self.add, self.counter(key, day), vec![n])
            .await?;
        Ok(u64::try_from(total).ok())
    }

    /// Creates the counter at `count` unless it exists (another node may
    /// have seeded it first, and its value then stands).
    pub(crate) async fn seed(
        &self,
        key: &KeyId,
        day: UtcDay,
        count: u64,
    ) -> Result<(), RedisFailure> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("SET");
        command
            .arg(self.counter(key, day))
            .arg(count)
            .arg("NX")
            .arg("EX")
            .arg(COUNTER_TTL_SECS);
        let _: Option<String> = self
            .bounded(async move { command.query_async(&mut connection).await })
            .await?;
        Ok(())
    }

    /// Returns `n` unspent lookups of `key` on `day`; replies how many.
    pub(crate) async fn give_back(
        &self,
        key: &KeyId,
        day: UtcDay,
        n: u64,
    ) -> Result<u64, RedisFailure> {
        let back: i64 = self
            .run_script(&self.give_back, self.counter(key, day), vec![n])
            .await?;
        Ok(u64::try_from(back).unwrap_or(0))
    }

    /// One round trip, to learn whether Redis answers.
    pub(crate) async fn ping(&self) -> Result<(), RedisFailure> {
        let mut connection = self.connection.clone();
        let _: String = self
            .bounded(async move { redis::cmd("PING").query_async(&mut connection).await })
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call made on another runtime (an HTTP worker's) runs on the home
    /// runtime, so the connection it may open outlives that runtime.
    #[test]
    fn calls_from_another_runtime_run_at_home() {
        let home = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let url = RedisUrl::parse("redis://127.0.0.1:6379/0").unwrap();
        let counters = home
            .block_on(async { RedisCounters::new(&url, "test:", Duration::from_secs(2)) })
            .unwrap();
        let worker = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ran_on = worker
            .block_on(counters.bounded(async { Ok(Handle::current().id()) }))
            .unwrap();
        assert_eq!(ran_on, home.handle().id());
        let here = home
            .block_on(counters.bounded(async { Ok(Handle::current().id()) }))
            .unwrap();
        assert_eq!(here, home.handle().id());
    }
}
