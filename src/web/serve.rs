//! Running an actix-web server with a tracker until a stop signal, then draining both within
//! one budget.

use std::fmt;
use std::io;
use std::pin::pin;
use std::time::{Duration, Instant};

use actix_web::dev::Server;
use futures::future::{select, Either};
use serde::Serialize;

use crate::error::ShutdownError;
use crate::report::FlushReport;
use crate::tracker::{Tracker, TrackerStats};

/// The whole shutdown's default budget, server drain and tracker drain together: under the
/// 30 s Kubernetes gives before SIGKILL, with room for the process to exit (`docker stop`
/// gives 10 s: set a smaller budget there).
pub const DEFAULT_SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

/// The default share of the budget the server has to finish the requests it is serving;
/// the tracker has the rest (at least `budget − server drain`).
pub const DEFAULT_SERVER_DRAIN: Duration = Duration::from_secs(10);

/// The signal that stopped the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum StopSignal {
    /// `SIGTERM`: what Kubernetes, systemd and `docker stop` send.
    #[serde(rename = "SIGTERM")]
    Terminate,
    /// `SIGINT`: Ctrl-C (on Windows, the only one).
    #[serde(rename = "SIGINT")]
    Interrupt,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Terminate => "SIGTERM",
            Self::Interrupt => "SIGINT",
        })
    }
}

/// How a served app stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ServeReport {
    /// The signal that began the shutdown; `None` when the server stopped by itself (its
    /// [`ServerHandle`](actix_web::dev::ServerHandle) or an error).
    pub signal: Option<StopSignal>,
    /// Whether the server finished the requests it was serving within its share of the
    /// budget (`false`: their connections were closed).
    pub server_drained: bool,
    /// Whether a second signal cut the shutdown short.
    pub cut: bool,
    /// From the first signal (or the server's own stop) to the end of the shutdown, in ms.
    pub shutdown_ms: u64,
    /// The tracker's shutdown: events sent and dropped while it drained, what was left.
    pub shutdown: FlushReport,
    /// The tracker's final counters (every event since it was built).
    pub stats: TrackerStats,
}

/// A served app could not run or stop as it should.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The stop signals could not be listened for; the server was not run.
    #[error("cannot listen for stop signals: {0}")]
    Signals(#[source] io::Error),
    /// The server failed; the tracker was still drained, as `report` says.
    #[error("the server failed: {error}")]
    Server {
        /// What the server returned.
        #[source]
        error: io::Error,
        /// The shutdown that followed.
        report: Box<ServeReport>,
    },
    /// The tracker could not shut down (it was already shut down).
    #[error("the tracker could not shut down: {0}")]
    Shutdown(#[from] ShutdownError),
}

/// Runs an actix-web [`Server`] with a [`Tracker`] until `SIGTERM` or `SIGINT` (Ctrl-C),
/// then drains both within one budget and reports.
///
/// On the first signal the server stops taking connections and finishes the requests it
/// is serving, for at most its share of the budget ([`server_drain`](Self::server_drain));
/// then the tracker shuts down with what is left of the budget, so what the last requests
/// tracked is delivered too. A second signal ends at once: the server's connections are
/// closed, the tracker's shutdown is cut short ([`Tracker::cut_shutdown`]) and what was left
/// is reported as dropped (`shutdown`).
///
/// Build the server with [`HttpServer::disable_signals`](actix_web::HttpServer) so that
/// this owns the signals: actix-server's own handling also stops on them, with its own
/// timeout (`shutdown_timeout`, 30 s by default) outside the budget.
///
/// # Examples
///
/// ```no_run
/// use actix_web::{web, App, HttpResponse, HttpServer};
/// use snowplow_actix::web::{Serve, SnowplowTracking};
/// use snowplow_actix::{EmitterBuilder, Tracker};
///
/// #[actix_web::main]
/// async fn main() -> Result<(), Box<dyn std::error::Error>> {
///     // Once, outside the server's factory: one tracker for every worker.
///     let tracker = Tracker::builder("web")
///         .emitter(EmitterBuilder::new("https://collector.example.com"))
///         .build()?;
///     let tracking = SnowplowTracking::new(tracker.clone());
///     let server = HttpServer::new(move || {
///         App::new()
///             .wrap(tracking.clone())
///             .route("/", web::get().to(HttpResponse::Ok))
///     })
///     .bind(("127.0.0.1", 8080))?
///     .disable_signals()
///     .run();
///
///     let report = Serve::new(tracker).run(server).await?;
///     println!("{} events sent while draining", report.shutdown.sent);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone)]
pub struct Serve {
    tracker: Tracker,
    budget: Duration,
    server_drain: Duration,
}

impl Serve {
    /// Serves with `tracker`, a budget of [`DEFAULT_SHUTDOWN_BUDGET`] and a server drain of
    /// [`DEFAULT_SERVER_DRAIN`].
    pub fn new(tracker: Tracker) -> Self {
        Self {
            tracker,
            budget: DEFAULT_SHUTDOWN_BUDGET,
            server_drain: DEFAULT_SERVER_DRAIN,
        }
    }

    /// The whole shutdown's budget, from the first signal: set it below the grace period
    /// of whatever stops the process (Kubernetes' `terminationGracePeriodSeconds`).
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The most the server has (within the budget) to finish the requests it is serving.
    pub fn server_drain(mut self, drain: Duration) -> Self {
        self.server_drain = drain;
        self
    }

    /// Runs `server` until a stop signal (or until it stops by itself), then drains the
    /// server and the tracker within the budget.
    ///
    /// # Errors
    ///
    /// [`ServeError::Signals`] when the signals cannot be listened for (the server is not
    /// run); [`ServeError::Server`] when the server fails (the tracker is drained first);
    /// [`ServeError::Shutdown`] when the tracker was already shut down.
    pub async fn run(self, server: Server) -> Result<ServeReport, ServeError> {
        let mut signals = Signals::new().map_err(ServeError::Signals)?;
        let handle = server.handle();
        let mut server = Box::pin(server);

        let first = match select(server.as_mut(), pin!(signals.next())).await {
            Either::Left((result, _)) => Err(result),
            Either::Right((signal, _)) => Ok(signal),
        };
        let started = Instant::now();
        let deadline = started.checked_add(self.budget);
        let mut signal = None;
        let mut server_drained = true;
        let mut cut = false;
        let mut outcome = Ok(());
        match first {
            Err(result) => outcome = result,
            Ok(first) => {
                signal = Some(first);
                tracing::info!(
                    signal = %first,
                    budget_ms = millis(self.budget),
                    "stop signal: the server finishes its requests, then the tracker drains"
                );
                // Sent at once; the server future, polled below, carries it out.
                drop(handle.stop(true));
                let drain = pin!(actix_rt::time::sleep(self.server_drain.min(self.budget)));
                let stopping = select(server.as_mut(), drain);
                match select(stopping, pin!(signals.next())).await {
                    Either::Left((Either::Left((result, _)), _)) => outcome = result,
                    Either::Left((Either::Right(_), _)) => {
                        server_drained = false;
                        tracing::warn!(
                            drain_ms = millis(self.server_drain),
                            "the server did not finish its requests in time: closing their connections"
                        );
                    }
                    Either::Right((second, _)) => {
                        server_drained = false;
                        cut = true;
                        tracing::warn!(signal = %second, "second stop signal: stopping at once");
                    }
                }
            }
        }
        // Dropping an unfinished server closes its connections.
        drop(server);

        let left = match deadline {
            _ if cut => Duration::ZERO,
            Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            None => self.budget,
        };
        let shutdown = pin!(self.tracker.shutdown(left));
        let shutdown = if cut {
            shutdown.await
        } else {
            match select(shutdown, pin!(signals.next())).await {
                Either::Left((report, _)) => report,
                Either::Right((second, shutdown)) => {
                    cut = true;
                    tracing::warn!(signal = %second, "second stop signal: cutting the tracker's drain short");
                    self.tracker.cut_shutdown();
                    shutdown.await
                }
            }
        }?;
        let stats = self.stats().await;
        let report = ServeReport {
            signal,
            server_drained,
            cut,
            shutdown_ms: millis(started.elapsed()),
            shutdown,
            stats,
        };
        match outcome {
            Ok(()) => Ok(report),
            Err(error) => Err(ServeError::Server {
                error,
                report: Box::new(report),
            }),
        }
    }

    /// The tracker's final counters (a shut-down tracker answers from what it kept).
    async fn stats(&self) -> TrackerStats {
        self.tracker.stats().await.unwrap_or_default()
    }
}

/// The stop signals: `SIGTERM` and `SIGINT` on unix, Ctrl-C elsewhere.
struct Signals {
    #[cfg(unix)]
    terminate: actix_rt::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: actix_rt::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn new() -> io::Result<Self> {
        use actix_rt::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    fn new() -> io::Result<Self> {
        Ok(Self {})
    }

    /// The next signal (never, once the signal driver is gone).
    #[cfg(unix)]
    async fn next(&mut self) -> StopSignal {
        let terminate = pin!(self.terminate.recv());
        let interrupt = pin!(self.interrupt.recv());
        match select(terminate, interrupt).await {
            Either::Left((Some(()), _)) => StopSignal::Terminate,
            Either::Right((Some(()), _)) => StopSignal::Interrupt,
            _ => std::future::pending().await,
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) -> StopSignal {
        if actix_rt::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        StopSignal::Interrupt
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
