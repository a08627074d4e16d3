//! How a job fails: transient failures are retried with backoff, permanent
//! ones go straight to the dead-letter list.

use std::fmt;

/// A failed run of a job, and whether another run could succeed.
#[derive(Debug)]
pub enum JobError {
    /// Worth another try later (network, timeouts, 5xx, a database hiccup).
    Transient(anyhow::Error),
    /// Retrying cannot help (bad payload, a 4xx that means "never").
    Permanent(anyhow::Error),
}

impl JobError {
    /// A failure worth retrying.
    pub fn transient(error: impl Into<anyhow::Error>) -> Self {
        Self::Transient(error.into())
    }

    /// A failure no retry can fix.
    pub fn permanent(error: impl Into<anyhow::Error>) -> Self {
        Self::Permanent(error.into())
    }

    /// `transient` or `permanent`, as dead letters and metrics name it.
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

/// What a job's run ends with.
pub type JobResult = Result<(), JobError>;
