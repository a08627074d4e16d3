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
/// next attempt starts from it. Except a row this code cannot read (a column
/// missing, or holding a value its type does not have, such as a status no
/// enum variant names): the next attempt reads the same row, so it is
/// permanent and goes straight to the dead letters.
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::Decode(_) => Self::Permanent(error.into()),
            _ => Self::Transient(error.into()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_row_is_permanent_and_a_database_hiccup_transient() {
        let unreadable = sqlx::Error::ColumnDecode {
            index: "\"status\"".into(),
            source: "unknown variant `paused`".into(),
        };
        assert_eq!(JobError::from(unreadable).kind(), "permanent");
        let missing = sqlx::Error::ColumnNotFound("status".into());
        assert_eq!(JobError::from(missing).kind(), "permanent");
        assert_eq!(
            JobError::from(sqlx::Error::PoolTimedOut).kind(),
            "transient"
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(JobError::from(sqlx::Error::Io(io)).kind(), "transient");
    }
}
