//! Redis: the connection pool shared by events, presence, revocations and
//! the login throttle.
//!
//! Connections are multiplexed (any number of concurrent commands share
//! one), so the pool only spreads load over a few sockets. deadpool-redis's
//! own manager checks every connection it hands out with an `UNWATCH` +
//! `PING` round trip, which doubled the round trips of every one-command
//! use (the revocation check on each authenticated request, the presence
//! scripts). This manager hands connections out as they are: a connection
//! whose command failed because the socket dropped is marked and replaced
//! at its next checkout, and one is pinged only if it has not answered
//! anything for [`VERIFY_AFTER`]. Nothing here uses `WATCH`.

use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use redis::{
    Client, RedisError, RedisFuture, Value,
    aio::{ConnectionLike, MultiplexedConnection},
};
use secrecy::ExposeSecret;

use crate::Settings;

pub use deadpool_redis::redis;

/// The pool every service uses (`pool.get().await?` gives a connection).
pub type Pool = managed::Pool<Manager>;

/// A connection that has not answered for this long is pinged before reuse.
pub const VERIFY_AFTER: Duration = Duration::from_secs(5);

/// Why the Redis pool could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    /// `REDIS_URL` does not parse, or the pool settings are invalid.
    #[error("invalid REDIS_URL or pool settings: {0}")]
    Config(String),
}

/// A pool of multiplexed connections; connecting happens on first use so a
/// service can start (and report not-ready) while Redis is still coming up.
pub fn pool(settings: &Settings) -> Result<Pool, RedisSetupError> {
    let client = Client::open(settings.redis_url.expose_secret())
        .map_err(|e| RedisSetupError::Config(e.to_string()))?;
    let timeouts = managed::Timeouts {
        wait: Some(Duration::from_secs(5)),
        create: Some(Duration::from_secs(5)),
        recycle: Some(Duration::from_secs(5)),
    };
    Pool::builder(Manager { client })
        .max_size(settings.redis_pool_size)
        .timeouts(timeouts)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| RedisSetupError::Config(e.to_string()))
}

/// Creates multiplexed connections and recycles them without a round trip.
#[derive(Debug)]
pub struct Manager {
    client: Client,
}

impl managed::Manager for Manager {
    type Type = Connection;
    type Error = RedisError;

    async fn create(&self) -> Result<Connection, RedisError> {
        Ok(Connection {
            conn: self.client.get_multiplexed_async_connection().await?,
            dropped: false,
            verified: Instant::now(),
        })
    }

    async fn recycle(&self, conn: &mut Connection, _: &Metrics) -> RecycleResult<RedisError> {
        if conn.dropped {
            return Err(RecycleError::message("the connection dropped"));
        }
        if conn.verified.elapsed() >= VERIFY_AFTER {
            let _: () = redis::cmd("PING").query_async(&mut conn.conn).await?;
            conn.verified = Instant::now();
        }
        Ok(())
    }
}

/// A pooled multiplexed connection that remembers whether its socket
/// dropped (so the pool replaces it instead of handing it out again) and
/// when it last answered.
pub struct Connection {
    conn: MultiplexedConnection,
    dropped: bool,
    verified: Instant,
}

/// Runs one request on a connection and notes what its outcome says about
/// the connection: an answer verifies it, a dropped socket condemns it.
async fn noted<T>(
    dropped: &mut bool,
    verified: &mut Instant,
    request: RedisFuture<'_, T>,
) -> Result<T, RedisError> {
    let result = request.await;
    match &result {
        Ok(_) => *verified = Instant::now(),
        Err(error)
            if error.is_connection_dropped()
                || error.is_io_error()
                || error.is_unrecoverable_error() =>
        {
            *dropped = true;
        }
        Err(_) => {}
    }
    result
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        let Self {
            conn,
            dropped,
            verified,
        } = self;
        Box::pin(noted(dropped, verified, conn.req_packed_command(cmd)))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let Self {
            conn,
            dropped,
            verified,
        } = self;
        Box::pin(noted(
            dropped,
            verified,
            conn.req_packed_commands(cmd, offset, count),
        ))
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pool_size: usize) -> Settings {
        let mut settings = Settings::from_env().unwrap_or_default();
        settings.redis_pool_size = pool_size;
        settings
    }

    /// The server's id for the connection `conn` holds.
    async fn client_id(conn: &mut Connection) -> i64 {
        redis::cmd("CLIENT")
            .arg("ID")
            .query_async(conn)
            .await
            .unwrap()
    }

    /// Redis restarted or killed the socket: the command that finds out
    /// fails, and the next checkout is a fresh, working connection instead
    /// of the dead one.
    #[tokio::test]
    async fn a_connection_whose_socket_dropped_is_replaced_at_the_next_checkout() {
        let pool = pool(&settings(1)).expect("pool");
        let mut conn = pool.get().await.unwrap();
        let id = client_id(&mut conn).await;
        let mut admin = Client::open(settings(1).redis_url.expose_secret())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .query_async(&mut admin)
            .await
            .unwrap();
        assert_eq!(killed, 1);
        let after: Result<String, _> = redis::cmd("PING").query_async(&mut *conn).await;
        assert!(after.is_err(), "a killed connection answered: {after:?}");
        drop(conn);
        let mut conn = pool.get().await.unwrap();
        let fresh = client_id(&mut conn).await;
        assert_ne!(fresh, id);
    }
}
