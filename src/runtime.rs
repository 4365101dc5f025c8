//! The threads a tracker's actors run on, outside the application's actix `System`.
//!
//! `System::stop` (what actix-server calls once it has stopped after a signal) stops every
//! arbiter registered with the system. A tracker must outlive it: its shutdown comes after
//! the server has stopped and still has to deliver what is buffered. So the fan-out and
//! each emitter run on a thread with an actix `System` of its own, which only its owner
//! stops (a tracker's shutdown or drop, or an emitter that nobody can reach any more).

use std::io;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use actix::{Arbiter, ArbiterHandle, System};

/// A thread running an actix `System` of its own.
#[derive(Debug, Clone)]
pub(crate) struct Runtime {
    system: System,
    arbiter: ArbiterHandle,
    #[cfg_attr(not(test), allow(dead_code))]
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl Runtime {
    /// Starts a thread called `name` with its own `System`; returns once it runs. The thread
    /// logs to the `tracing` subscriber current where it is started (the global one, or a
    /// scoped one set with `tracing::subscriber::set_default`).
    ///
    /// # Errors
    ///
    /// When the thread or its async runtime cannot be started.
    pub(crate) fn start(name: &str) -> io::Result<Self> {
        let (started, ready) = mpsc::sync_channel(1);
        let dispatch = tracing::dispatcher::get_default(tracing::Dispatch::clone);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let _logs = tracing::dispatcher::set_default(&dispatch);
                let runner = System::new();
                if started
                    .send((System::current(), Arbiter::current()))
                    .is_ok()
                {
                    // Returns once `stop` is called; the actors are dropped with the
                    // runtime, on this thread.
                    let _ = runner.run();
                }
            })?;
        let (system, arbiter) = ready
            .recv()
            .map_err(|_| io::Error::other("the thread stopped before its runtime started"))?;
        Ok(Self {
            system,
            arbiter,
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    /// Where actors are started on this thread.
    pub(crate) fn arbiter(&self) -> &ArbiterHandle {
        &self.arbiter
    }

    /// Stops the thread: its actors are dropped, what they hold is settled as they stop.
    pub(crate) fn stop(&self) {
        self.system.stop();
    }

    /// Waits until the thread has ended (after [`stop`](Self::stop)).
    #[cfg(test)]
    pub(crate) fn join(&self) {
        let thread = crate::sync::lock(&self.thread).take();
        if let Some(thread) = thread {
            thread.join().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runtime_runs_work_until_stopped_and_outlives_no_system() {
        // No actix System on this thread at all: the runtime brings its own.
        assert!(System::try_current().is_none());
        let runtime = Runtime::start("snowplow-test").unwrap();
        let (done, answer) = mpsc::channel();
        runtime.arbiter().spawn(async move {
            let name = std::thread::current().name().map(str::to_owned);
            done.send(name).unwrap();
        });
        assert_eq!(answer.recv().unwrap().as_deref(), Some("snowplow-test"));
        runtime.stop();
        runtime.join();
        // Once stopped, its arbiter takes nothing more.
        assert!(!runtime.arbiter().spawn(async {}));
    }

    /// A subscriber set for a scope (as a test or an application with several does) sees
    /// what the runtime's thread logs, not only the global one.
    #[test]
    fn the_thread_logs_to_the_subscriber_current_where_it_started() {
        let lines = Arc::new(Mutex::new(Vec::<u8>::new()));
        let writer = lines.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || Sink(writer.clone()))
            .finish();
        let runtime = tracing::subscriber::with_default(subscriber, || {
            Runtime::start("snowplow-test").unwrap()
        });
        let (done, answer) = mpsc::channel();
        runtime.arbiter().spawn(async move {
            tracing::info!("from the runtime's thread");
            done.send(()).unwrap();
        });
        answer.recv().unwrap();
        runtime.stop();
        runtime.join();
        let text = String::from_utf8(lines.lock().unwrap().clone()).unwrap();
        assert!(text.contains("from the runtime's thread"), "{text}");
    }

    /// Writes into a shared buffer.
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
}
