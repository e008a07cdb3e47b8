//! The runtime of one PostgreSQL store: one worker thread that drives its connections,
//! the writer's and the readers', so the store works from any caller, async or not.

/// The runtime of one PostgreSQL store: one worker thread driving the connections. Shut
/// down in the background when the last handle goes, so dropping a store inside async
/// code does not panic.
pub(crate) struct Driver(Option<tokio::runtime::Runtime>);

impl Driver {
    pub(crate) fn start() -> std::io::Result<Driver> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("storage-postgres")
            .enable_all()
            .build()?;
        Ok(Driver(Some(runtime)))
    }

    pub(crate) fn handle(&self) -> &tokio::runtime::Handle {
        match &self.0 {
            Some(runtime) => runtime.handle(),
            None => unreachable!("the runtime is only taken out when the driver is dropped"),
        }
    }

    /// Runs `future` to completion on this runtime from any thread, also from inside
    /// another runtime (a scoped thread does the blocking): for opening a store.
    pub(crate) fn block_on<F: std::future::Future + Send>(&self, future: F) -> F::Output
    where
        F::Output: Send,
    {
        std::thread::scope(
            |scope| match scope.spawn(|| self.handle().block_on(future)).join() {
                Ok(output) => output,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}
