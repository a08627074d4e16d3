//! How a job fails: transient failures are retried with backoff, permanent
//! ones go straight to the dead-letter list.

use std::fmt;

#[derive(Debug)]
pub enum JobError {
    /// Worth another try later (network, timeouts, 5xx, a database hiccup).
    Transient(anyhow::Error),
    /// Retrying cannot help (bad payload, a 4xx that means "never").
    Permanent(anyhow::Error),
}

impl JobError {
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        Self::Transient(error.into())
    }

    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(error.into())
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transient(e) | Self::Permanent(e) => write!(f, "{e:#}"),
        }
    }
}

/// Database and Redis errors are transient: the record is the truth and the
/// next attempt starts from it.
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        Self::Transient(error.into())
    }
}

impl From<deadpool_redis::PoolError> for JobError {
    fn from(error: deadpool_redis::PoolError) -> Self {
        Self::Transient(error.into())
    }
}

impl From<deadpool_redis::redis::RedisError> for JobError {
    fn from(error: deadpool_redis::redis::RedisError) -> Self {
        Self::Transient(error.into())
    }
}

pub type JobResult = Result<(), JobError>;
