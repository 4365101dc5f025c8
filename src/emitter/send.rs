//! Delivery: cutting requests from the queue, sending them, classifying the answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use super::actor::{Emitter, InFlight};
use super::config::Failure;
use super::endpoint::Method;
use super::stats::{millis, DropReason, FailureReason};
use crate::error::TransportError;
use crate::stamp::{now_ms, StampedEvent};
use crate::store::{LeaseId, StoredEvent};
use crate::transport::{Request, Response};
use crate::wire::{push_post_body, Stm, BODY_PREFIX};

impl Emitter {
    /// Whether the queue reached a size trigger: `batch_size` events or `byte_limit` bytes.
    fn reached_limit(&self) -> bool {
        self.store.len() >= self.settings.batch_size
            || self
                .settings
                .byte_limit
                .is_some_and(|limit| self.queued_bytes >= limit as u64)
    }

    /// Whether a request should go out now: a flush is under way, or a size trigger fired
    /// (which starts a flush of the whole queue, as the baseline's `reached_limit`).
    pub(super) fn wants_to_send(&mut self) -> bool {
        if self.store.is_empty() {
            return false;
        }
        if !self.draining && self.reached_limit() {
            self.draining = true;
        }
        self.draining || !self.waiters.is_empty()
    }

    /// Sends requests while allowed: not backing off, below `max_in_flight`, and a flush
    /// under way (asked for, or started by a size trigger).
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.transport.is_none() || self.retry_at.is_some() {
            return;
        }
        while self.in_flight.len() < self.settings.max_in_flight && self.wants_to_send() {
            let (max_events, max_cost) = self.lease_limits();
            let lease = match self.store.lease(max_events, max_cost) {
                Ok(lease) if !lease.events.is_empty() => lease,
                Ok(_) => break,
                Err(error) => {
                    tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to hand out a batch");
                    break;
                }
            };
            self.send(lease.id, lease.events, max_cost, ctx);
        }
        if self.store.is_empty() {
            self.draining = false;
        }
    }

    pub(super) fn send(
        &mut self,
        lease: LeaseId,
        mut events: Vec<StoredEvent>,
        max_cost: usize,
        ctx: &mut Context<Self>,
    ) {
        let cost: u64 = events.iter().map(|e| e.cost as u64).sum();
        self.queued_bytes -= cost;
        let oversize =
            events.len() == 1 && self.settings.byte_limit.is_some() && events[0].cost > max_cost;
        for event in &mut events {
            event.attempts += 1;
        }
        let stm_ms = now_ms();
        let stm = Stm::new(stm_ms);
        let (url, body) = match self.settings.method {
            Method::Post => {
                let mut body = String::with_capacity(cost as usize + BODY_PREFIX.len() + 2);
                push_post_body(&mut body, events.iter().map(|e| &e.event), stm_ms);
                (self.settings.url.clone(), body)
            }
            Method::Get => {
                let mut url = String::with_capacity(cost as usize);
                url.push_str(&self.settings.url);
                url.push('?');
                events[0].event.push_query(&mut url, &stm);
                (url, String::new())
            }
        };
        let request = Request {
            method: self.settings.method,
            url,
            body,
            timeout: self.settings.request_timeout.request(),
            events: events.len(),
        };
        tracing::debug!(
            endpoint = %self.settings.endpoint,
            method = ?request.method,
            events = request.events,
            bytes = request.body.len().max(request.url.len()),
            "sending request"
        );
        let id = self.next_request;
        self.next_request += 1;
        self.stats.requests += 1;
        self.in_flight_events += events.len() as u64;
        self.in_flight.insert(
            id,
            InFlight {
                lease,
                events,
                oversize,
            },
        );
        let generation = self.generation;
        let transport = self.transport.as_ref().expect("pump checks the transport");
        let answer = transport.send(request);
        ctx.spawn(answer.into_actor(self).map(move |result, act, ctx| {
            act.on_answer(id, generation, result, ctx);
        }));
    }

    pub(super) fn on_answer(
        &mut self,
        id: u64,
        generation: u64,
        result: Result<Response, TransportError>,
        ctx: &mut Context<Self>,
    ) {
        if generation != self.generation {
            return;
        }
        let Some(flight) = self.in_flight.remove(&id) else {
            return;
        };
        self.in_flight_events -= flight.events.len() as u64;
        let reason = match result {
            Ok(Response { status }) if (200..300).contains(&status) => {
                self.on_success(flight);
                self.after_change(ctx);
                return;
            }
            Ok(Response { status }) => FailureReason::Status(status),
            Err(TransportError::Timeout) => FailureReason::Timeout,
            Err(TransportError::Connection(error)) => FailureReason::Connection(error),
            Err(TransportError::Fatal(error)) => FailureReason::Fatal(error),
        };
        let fatal = matches!(reason, FailureReason::Fatal(_));
        self.on_failure(flight, reason, ctx);
        if fatal {
            tracing::error!(endpoint = %self.settings.endpoint, "transport failed fatally: restarting the emitter");
            ctx.stop();
            return;
        }
        self.after_change(ctx);
    }

    pub(super) fn on_success(&mut self, flight: InFlight) {
        let count = flight.events.len() as u64;
        if let Err(error) = self.store.acknowledge(flight.lease) {
            tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to remove sent events");
        }
        self.stats.sent += count;
        self.stats.consecutive_failures = 0;
        self.backoff.reset();
        tracing::debug!(endpoint = %self.settings.endpoint, events = count, "request accepted");
        if let Some(callback) = self.settings.on_success.clone() {
            let events = shared(&flight.events);
            self.guarded("on_success", || callback(&events));
        }
        self.release(flight.events);
    }

    pub(super) fn on_failure(
        &mut self,
        flight: InFlight,
        reason: FailureReason,
        ctx: &mut Context<Self>,
    ) {
        let count = flight.events.len();
        let retryable = !flight.oversize && self.settings.retry.retries(&reason);
        if !retryable {
            let dropped_as = if flight.oversize {
                DropReason::Oversize
            } else {
                DropReason::Rejected
            };
            if let Err(error) = self.store.acknowledge(flight.lease) {
                tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to remove dropped events");
            }
            self.drop_events(dropped_as, count as u64);
            self.stats.consecutive_failures = 0;
            self.backoff.reset();
            tracing::warn!(
                endpoint = %self.settings.endpoint,
                %reason,
                events = count,
                dropped_as = %dropped_as,
                "request failed and is not retried: events dropped"
            );
            self.report_failure(&flight.events, &reason, false, Some(dropped_as));
            return;
        }

        let now = now_ms();
        let mut retry = Vec::with_capacity(count);
        let mut exhausted = Vec::new();
        let mut expired = Vec::new();
        for event in flight.events {
            if self
                .settings
                .max_attempts
                .is_some_and(|max| event.attempts >= max)
            {
                exhausted.push(event);
            } else if self
                .settings
                .max_event_age
                .is_some_and(|age| now.saturating_sub(event.received_ms) > millis(age))
            {
                expired.push(event);
            } else {
                retry.push(event);
            }
        }
        self.queued_bytes += retry.iter().map(|e| e.cost as u64).sum::<u64>();
        self.stats.retried += retry.len() as u64;
        self.drop_events(DropReason::AttemptsExhausted, exhausted.len() as u64);
        self.drop_events(DropReason::Expired, expired.len() as u64);
        let retried = retry.clone();
        if let Err(error) = self.store.requeue(flight.lease, retry) {
            tracing::error!(endpoint = %self.settings.endpoint, %error, "event store failed to requeue events");
        }
        self.stats.consecutive_failures += 1;
        if self.retry_at.is_none() {
            let delay = self.backoff.next_delay();
            self.schedule_retry(delay, ctx);
        }
        tracing::warn!(
            endpoint = %self.settings.endpoint,
            %reason,
            events = count,
            retried = retried.len(),
            attempts_exhausted = exhausted.len(),
            expired = expired.len(),
            retry_in_ms = millis(self.backoff.current()),
            "request failed"
        );
        if !retried.is_empty() {
            self.report_failure(&retried, &reason, true, None);
        }
        if !exhausted.is_empty() {
            self.report_failure(
                &exhausted,
                &reason,
                false,
                Some(DropReason::AttemptsExhausted),
            );
        }
        if !expired.is_empty() {
            self.report_failure(&expired, &reason, false, Some(DropReason::Expired));
        }
    }

    pub(super) fn report_failure(
        &mut self,
        events: &[StoredEvent],
        reason: &FailureReason,
        will_retry: bool,
        dropped: Option<DropReason>,
    ) {
        if let Some(callback) = self.settings.on_failure.clone() {
            let events = shared(events);
            let failure = Failure {
                sent: 0,
                events: &events,
                reason,
                will_retry,
                dropped,
            };
            self.guarded("on_failure", || callback(&failure));
        }
    }

    pub(super) fn schedule_retry(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        self.retry_at = Some(Instant::now() + delay);
        ctx.run_later(delay, |act, ctx| {
            act.retry_at = None;
            act.draining = true;
            act.pump(ctx);
        });
    }
}

pub(super) fn shared(events: &[StoredEvent]) -> Vec<Arc<StampedEvent>> {
    events.iter().map(|e| e.event.clone()).collect()
}
