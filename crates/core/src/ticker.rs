//! The clock of a periodic background task: every loop that wakes on an
//! interval and ends on shutdown (sweeps, heartbeats, lease renewal,
//! watchdogs) waits on one of these.

use std::{future::Future, pin::Pin, time::Duration};

use tokio::time::{Interval, MissedTickBehavior};

/// Ticks every `period` until `stop` resolves. The first tick is
/// immediate; a tick that comes late (the task ran long) is delayed rather
/// than followed by a burst of catch-up ticks.
pub struct Ticker<S> {
    interval: Interval,
    stop: Pin<Box<S>>,
    stopped: bool,
}

impl<S: Future<Output = ()>> Ticker<S> {
    /// A ticker that ticks every `period` until `stop` resolves.
    pub fn new(period: Duration, stop: S) -> Self {
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Self {
            interval,
            stop: Box::pin(stop),
            stopped: false,
        }
    }

    /// Waits for the next tick: `true`, or `false` once `stop` has resolved
    /// (and from then on).
    pub async fn tick(&mut self) -> bool {
        if self.stopped {
            return false;
        }
        tokio::select! {
            () = &mut self.stop => {
                self.stopped = true;
                false
            }
            _ = self.interval.tick() => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_ticks_until_stopped_and_never_after() {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let period = Duration::from_millis(50);
        let mut ticker = Ticker::new(period, async move {
            let _ = rx.await;
        });
        let started = tokio::time::Instant::now();
        assert!(ticker.tick().await, "the first tick is immediate");
        assert!(ticker.tick().await);
        assert!(started.elapsed() >= period, "{:?}", started.elapsed());
        let _ = tx.send(());
        assert!(!ticker.tick().await);
        assert!(!ticker.tick().await, "stopped stays stopped");
    }
}
