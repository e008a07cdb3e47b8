//! Telling long-running tasks to stop, in the style of tokio's mini-redis: the owner of a
//! [`Trigger`] fires it once; every task holds a cheap [`Shutdown`] clone and either polls
//! [`Shutdown::is_shutdown`] or awaits [`Shutdown::recv`] in its `select!`.

use tokio::sync::watch;

/// Fires the shutdown; dropping it without firing also counts as a shutdown.
pub(crate) struct Trigger(watch::Sender<bool>);

/// A task's view of the shutdown.
#[derive(Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

/// A new, not yet fired, trigger and its listener.
pub(crate) fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub(crate) fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    pub(crate) fn is_shutdown(&self) -> bool {
        *self.0.borrow()
    }

    /// Returns once the shutdown was fired (at once if it already was).
    pub(crate) async fn recv(&mut self) {
        // An error means the trigger is gone, which also means: stop.
        let _ = self.0.wait_for(|fired| *fired).await;
    }

    /// Runs `tick` at once and then every `every` until the shutdown. A tick that ran late
    /// delays the next one rather than being followed by a burst of catch-up ticks.
    pub(crate) async fn every<F: std::future::Future<Output = ()>>(
        mut self,
        every: std::time::Duration,
        mut tick: impl FnMut() -> F,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = self.recv() => return,
            }
            tick().await;
        }
    }
}
