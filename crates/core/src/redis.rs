//! Redis: the connection pool shared by events, presence, revocations and queues.

use deadpool_redis::{Config, Pool, Runtime};
use secrecy::ExposeSecret;

use crate::Settings;

pub use deadpool_redis::redis;

#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid REDIS_URL or pool settings: {0}")]
    Config(String),
}

/// A pool of multiplexed connections; connecting happens on first use so a
/// service can start (and report not-ready) while Redis is still coming up.
pub fn pool(settings: &Settings) -> Result<Pool, RedisSetupError> {
    let mut config = Config::from_url(settings.redis_url.expose_secret());
    config.pool = Some(deadpool_redis::PoolConfig {
        max_size: settings.redis_pool_size,
        timeouts: deadpool_redis::Timeouts {
            wait: Some(std::time::Duration::from_secs(5)),
            create: Some(std::time::Duration::from_secs(5)),
            recycle: Some(std::time::Duration::from_secs(5)),
        },
        ..Default::default()
    });
    config
        .create_pool(Some(Runtime::Tokio1))
        .map_err(|e| RedisSetupError::Config(e.to_string()))
}
