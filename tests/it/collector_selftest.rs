//! Pins the behaviour of the test collector (`tests/common/collector.rs`) itself, with awc as
//! the client: validation, recording, GET decoding, every fault rule, waiting, and the raw TCP
//! misbehaviours.

use std::time::{Duration, Instant};

use crate::common::collector::envelope::{form_decode, PAYLOAD_DATA_SCHEMA};
use crate::common::collector::{draw, Faults, RawBehaviour, RawCollector, TestCollector};

const WAIT: Duration = Duration::from_secs(5);
const JSON: &str = "application/json; charset=utf-8";

/// One valid event object, keys in this order: e, url, p, tv, eid, dtm, stm.
fn event(eid: &str) -> String {
    format!(
        r#"{{"e":"pv","url":"http://x.com/a b","p":"srv","tv":"rust-actix-0.1.0","eid":"{eid}","dtm":"1700000000123","stm":"1700000000456"}}"#
    )
}

/// A POST body with one event per id (built by hand: `serde_json::json!` sorts keys).
fn envelope(eids: &[&str]) -> String {
    let events: Vec<String> = eids.iter().map(|e| event(e)).collect();
    format!(
        r#"{{"schema":"{PAYLOAD_DATA_SCHEMA}","data":[{}]}}"#,
        events.join(",")
    )
}

async fn post_with(url: &str, content_type: &str, body: String) -> u16 {
    awc::Client::default()
        .post(url)
        .insert_header(("Content-Type", content_type))
        .send_body(body)
        .await
        .expect("POST to the test collector")
        .status()
        .as_u16()
}

async fn post(collector: &TestCollector, eids: &[&str]) -> u16 {
    post_with(&collector.post_url(), JSON, envelope(eids)).await
}

async fn get(url: &str) -> u16 {
    awc::Client::default()
        .get(url)
        .send()
        .await
        .expect("GET to the test collector")
        .status()
        .as_u16()
}

fn get_url(collector: &TestCollector, extra: &str) -> String {
    format!(
        "{}?e=se&p=srv&tv=rust-actix-0.1.0&stm=1700000000456{extra}",
        collector.get_url()
    )
}

#[actix_rt::test]
async fn valid_posts_are_accepted_and_recorded_in_order() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    assert!(collector.endpoint().starts_with("http://127.0.0.1:"));
    assert_eq!(post(&collector, &["a", "b"]).await, 200);
    assert_eq!(post(&collector, &["c"]).await, 200);

    assert_eq!(collector.event_ids(), ["a", "b", "c"]);
    assert_eq!(collector.accepted_count(), 3);
    let requests = collector.requests();
    assert_eq!(requests.len(), 2);
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r.index, i);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/com.snowplowanalytics.snowplow/tp2");
        assert_eq!(r.status, 200);
        assert!(r.valid && r.error.is_none(), "{r:?}");
        assert_eq!(r.body_len_or_query_len, r.raw.len());
        assert_eq!(r.content_type.as_deref(), Some(JSON));
    }
    assert!(requests[0].at <= requests[1].at);
    assert_eq!(
        requests[0].body_len_or_query_len,
        envelope(&["a", "b"]).len()
    );
    // Pairs keep the wire order of the JSON object.
    let first = &collector.events()[0];
    assert_eq!(
        first.names(),
        ["e", "url", "p", "tv", "eid", "dtm", "stm"].map(String::from)
    );
    assert_eq!(first.get("url"), Some("http://x.com/a b"));
    assert_eq!(first.eid(), Some("a"));
    assert_eq!(first.get("nope"), None);

    let body = r#"{"schema":"iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4","data":[{"stm":"1700000000456","e":"se","p":"srv","tv":"t","se_ca":"caf\u00e9"}]}"#;
    assert_eq!(
        post_with(&collector.post_url(), "application/json", body.to_owned()).await,
        200
    );
    let last = collector.events().pop().unwrap();
    assert_eq!(last.names(), ["stm", "e", "p", "tv", "se_ca"]);
    assert_eq!(last.get("se_ca"), Some("café"));
    collector.stop().await;
}

#[actix_rt::test]
async fn invalid_posts_get_400_and_are_not_accepted() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let url = collector.post_url();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&envelope(&["x"])).unwrap();
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(&str, &str, String)> = vec![
        ("not json", JSON, "{not json".to_owned()),
        ("wrong content type", "text/plain", envelope(&["x"])),
        (
            "wrong schema",
            JSON,
            with(&|v| v["schema"] = "iglu:com.acme/x/jsonschema/1-0-0".into()),
        ),
        (
            "empty data",
            JSON,
            with(&|v| v["data"] = serde_json::json!([])),
        ),
        (
            "data not array",
            JSON,
            with(&|v| v["data"] = serde_json::json!({"e": "pv"})),
        ),
        (
            "item not object",
            JSON,
            with(&|v| v["data"][0] = "e=pv".into()),
        ),
        (
            "number value",
            JSON,
            with(&|v| v["data"][0]["dtm"] = 1700000000123u64.into()),
        ),
        (
            "missing tv",
            JSON,
            with(&|v| {
                v["data"][0].as_object_mut().unwrap().remove("tv");
            }),
        ),
        (
            "missing stm",
            JSON,
            with(&|v| {
                v["data"][0].as_object_mut().unwrap().remove("stm");
            }),
        ),
        (
            "stm in seconds",
            JSON,
            with(&|v| v["data"][0]["stm"] = "1700000000".into()),
        ),
        (
            "extra envelope key",
            JSON,
            with(&|v| v["extra"] = "1".into()),
        ),
    ];
    for (what, content_type, body) in &cases {
        assert_eq!(
            post_with(&url, content_type, body.clone()).await,
            400,
            "{what}"
        );
    }
    let requests = collector.requests();
    assert_eq!(requests.len(), cases.len());
    for (r, (what, _, _)) in requests.iter().zip(&cases) {
        assert!(!r.valid, "{what}");
        assert_eq!(r.status, 400, "{what}");
        assert!(r.error.is_some(), "{what}");
    }
    assert!(requests[6].error.as_deref().unwrap().contains("`dtm`"));
    assert!(requests[9].error.as_deref().unwrap().contains("13 digits"));
    assert_eq!(collector.accepted_count(), 0);
    assert!(collector.events().is_empty());

    // Unknown path and wrong method.
    assert_eq!(get(&format!("{}/nope", collector.endpoint())).await, 404);
    assert_eq!(get(&collector.post_url()).await, 405);
    assert_eq!(collector.statuses()[cases.len()..], [404, 405]);
}

#[actix_rt::test]
async fn get_is_form_decoded_and_checked() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let url = get_url(
        &collector,
        "&url=http%3A%2F%2Fx.com%2Fa+b%3Fc%3Dd~e%2Af&page=T%C3%AFtle+%28x%29&se_la=a%2Bb&empty=",
    );
    assert_eq!(get(&url).await, 200);
    let events = collector.wait_for_events(1, WAIT).await.unwrap();
    let e = &events[0];
    assert_eq!(e.get("url"), Some("http://x.com/a b?c=d~e*f"));
    assert_eq!(e.get("page"), Some("Tïtle (x)"));
    assert_eq!(e.get("se_la"), Some("a+b"));
    assert_eq!(e.get("empty"), Some(""));
    assert_eq!(
        e.names(),
        ["e", "p", "tv", "stm", "url", "page", "se_la", "empty"]
    );
    let r = &collector.requests()[0];
    assert_eq!((r.method.as_str(), r.path.as_str()), ("GET", "/i"));
    assert_eq!(r.body_len_or_query_len, r.raw.len());
    assert!(r.raw.contains("%C3%AF"));
    assert_eq!(r.target_len(), url.len() - collector.endpoint().len());

    // Missing required fields, bad escapes, bad UTF-8, bad stm: 400, not accepted.
    let base = collector.get_url();
    for bad in [
        format!("{base}?p=srv&tv=t"),
        format!("{base}?e=pv&tv=t"),
        format!("{base}?e=pv&p=srv"),
        base.clone(),
        get_url(&collector, "&page=100%"),
        get_url(&collector, "&page=%zz"),
        get_url(&collector, "&page=%FF"),
        format!("{base}?e=pv&p=srv&tv=t&stm=12"),
    ] {
        assert_eq!(get(&bad).await, 400, "{bad}");
    }
    assert_eq!(collector.accepted_count(), 1);
    assert!(collector.requests()[1..].iter().all(|r| !r.valid));

    assert_eq!(
        form_decode("a=1&b&c=x+y%21").unwrap(),
        [("a", "1"), ("b", ""), ("c", "x y!")].map(|(k, v)| (k.to_owned(), v.to_owned()))
    );
}

#[actix_rt::test]
async fn endpoint_paths_are_accepted() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    let sub = format!("{}/sub/path", collector.endpoint());
    assert_eq!(
        post_with(
            &format!("{sub}/com.snowplowanalytics.snowplow/tp2"),
            JSON,
            envelope(&["p1"])
        )
        .await,
        200
    );
    assert_eq!(get(&format!("{sub}/i?e=pv&p=srv&tv=t&eid=g1")).await, 200);
    let paths: Vec<String> = collector.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/sub/path/com.snowplowanalytics.snowplow/tp2",
            "/sub/path/i"
        ]
    );
    assert_eq!(collector.event_ids(), ["p1", "g1"]);
}

#[actix_rt::test]
async fn status_sequence_is_consumed_then_default() {
    let faults = Faults::statuses([500, 500, 200]);
    let collector = TestCollector::with_faults(faults).await;
    let mut statuses = Vec::new();
    for eid in ["a", "b", "c", "d"] {
        statuses.push(post(&collector, &[eid]).await);
    }
    assert_eq!(statuses, [500, 500, 200, 200]);
    assert_eq!(collector.statuses(), statuses);
    assert_eq!(collector.event_ids(), ["c", "d"]);
    // Rejected requests are still recorded with their events.
    assert_eq!(collector.requests()[0].events[0].eid(), Some("a"));
    assert!(collector.requests()[0].valid);

    // An invalid request does not consume the sequence.
    collector.set_faults(Faults::statuses([503]));
    assert_eq!(
        post_with(&collector.post_url(), JSON, "[]".into()).await,
        400
    );
    assert_eq!(post(&collector, &["e"]).await, 503);
    assert_eq!(post(&collector, &["f"]).await, 200);
}

#[actix_rt::test]
async fn fail_first_n_then_default() {
    let faults = Faults::fail_first(2, 503);
    let collector = TestCollector::with_faults(faults).await;
    let mut statuses = Vec::new();
    for eid in ["a", "b", "c"] {
        statuses.push(post(&collector, &[eid]).await);
    }
    assert_eq!(statuses, [503, 503, 200]);
    assert_eq!(collector.event_ids(), ["c"]);

    // Installing faults at run time restarts the count.
    collector.set_faults(Faults::fail_first(1, 500));
    assert_eq!(post(&collector, &["d"]).await, 500);
    assert_eq!(post(&collector, &["e"]).await, 200);
    collector.clear_faults();
    assert_eq!(post(&collector, &["f"]).await, 200);
    assert_eq!(collector.event_ids(), ["c", "e", "f"]);
}

async fn statuses_with_rate(seed: u64, n: usize) -> Vec<u16> {
    let faults = Faults::failure_rate(0.5, seed, 502);
    let collector = TestCollector::with_faults(faults).await;
    let mut statuses = Vec::new();
    for i in 0..n {
        statuses.push(get(&get_url(&collector, &format!("&eid={i}"))).await);
    }
    collector.stop().await;
    statuses
}

#[actix_rt::test]
async fn seeded_failure_rate_is_deterministic() {
    let first = statuses_with_rate(42, 40).await;
    let second = statuses_with_rate(42, 40).await;
    assert_eq!(first, second);
    let failed = first.iter().filter(|s| **s == 502).count();
    assert!(
        (8..=32).contains(&failed),
        "{failed} of 40 failed: {first:?}"
    );
    assert!(first.iter().all(|s| *s == 502 || *s == 200));
    assert_ne!(statuses_with_rate(7, 40).await, first);

    // The draws themselves are deterministic, in [0, 1), and differ by ordinal and by seed.
    let draws: Vec<f64> = (0..100).map(|n| draw(1, n)).collect();
    assert_eq!(draws, (0..100).map(|n| draw(1, n)).collect::<Vec<_>>());
    assert!(draws.iter().all(|x| (0.0..1.0).contains(x)), "{draws:?}");
    assert!(draws.windows(2).all(|pair| pair[0] != pair[1]), "{draws:?}");
    assert_ne!(draws, (0..100).map(|n| draw(2, n)).collect::<Vec<_>>());
}

#[actix_rt::test]
async fn rate_of_one_and_zero() {
    let faults = Faults::failure_rate(1.0, 3, 500);
    let collector = TestCollector::with_faults(faults).await;
    assert_eq!(post(&collector, &["a"]).await, 500);
    collector.set_faults(Faults::failure_rate(0.0, 3, 500));
    assert_eq!(post(&collector, &["b"]).await, 200);
}

#[actix_rt::test]
async fn delay_postpones_the_answer() {
    let delay = Duration::from_millis(200);
    let collector = TestCollector::with_faults(Faults::none().with_delay(delay)).await;
    let t0 = Instant::now();
    assert_eq!(post(&collector, &["a"]).await, 200);
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= delay && elapsed < delay * 10,
        "answered after {elapsed:?}"
    );
    assert_eq!(collector.requests()[0].delay, Some(delay));

    // Only the first request.
    let delay = Duration::from_millis(300);
    collector.set_faults(Faults::none().with_delay_first(1, delay));
    let t0 = Instant::now();
    assert_eq!(post(&collector, &["b"]).await, 200);
    let slow = t0.elapsed();
    let t1 = Instant::now();
    assert_eq!(post(&collector, &["c"]).await, 200);
    let fast = t1.elapsed();
    assert!(slow >= delay && slow < delay * 10, "slow: {slow:?}");
    assert!(fast < delay, "fast: {fast:?}");
    assert_eq!(collector.requests()[2].delay, None);
}

#[actix_rt::test]
async fn delayed_request_is_stored_even_if_the_client_gives_up() {
    let faults = Faults::none().with_delay(Duration::from_secs(3));
    let collector = TestCollector::with_faults(faults).await;
    let result = awc::Client::default()
        .post(collector.post_url())
        .insert_header(("Content-Type", JSON))
        .timeout(Duration::from_millis(100))
        .send_body(envelope(&["lost-answer"]))
        .await;
    assert!(
        matches!(result, Err(awc::error::SendRequestError::Timeout)),
        "{result:?}"
    );
    assert_eq!(collector.event_ids(), ["lost-answer"]);
    collector.stop().await;
}

#[actix_rt::test]
async fn down_for_the_first_period_answers_503() {
    let down = Duration::from_millis(300);
    let faults = Faults::down_for(down).with_delay(Duration::from_millis(50));
    let collector = TestCollector::with_faults(faults).await;
    let started = Instant::now();
    // Each answer takes 50 ms, so this loop makes a handful of requests, not a busy loop.
    let mut statuses = Vec::new();
    loop {
        let status = post(&collector, &["x"]).await;
        statuses.push(status);
        if status == 200 || started.elapsed() > WAIT {
            break;
        }
    }
    assert_eq!(statuses[0], 503);
    assert_eq!(statuses.last(), Some(&200), "{statuses:?}");
    assert!(statuses[..statuses.len() - 1].iter().all(|s| *s == 503));
    let requests = collector.requests();
    let last = requests.last().unwrap();
    assert!(last.at.duration_since(started) >= down - Duration::from_millis(50));
    for r in &requests[..requests.len() - 1] {
        assert!(r.at < started + down, "503 at {:?}", r.at - started);
    }
    assert_eq!(collector.accepted_count(), 1);
}

#[actix_rt::test]
async fn decider_gives_get_requests_mixed_statuses() {
    let faults =
        Faults::decide(|req| (req.events.first()?.get("se_ca") == Some("bad")).then_some(500));
    let collector = TestCollector::with_faults(faults).await;
    let mut statuses = Vec::new();
    for (eid, ca) in [("1", "ok"), ("2", "bad"), ("3", "ok"), ("4", "bad")] {
        statuses.push(get(&get_url(&collector, &format!("&eid={eid}&se_ca={ca}"))).await);
    }
    assert_eq!(statuses, [200, 500, 200, 500]);
    assert_eq!(collector.event_ids(), ["1", "3"]);
}

/// The status and `Retry-After` of a POST of one event per id.
async fn post_answer(collector: &TestCollector, eids: &[&str]) -> (u16, Option<String>) {
    let response = awc::Client::default()
        .post(collector.post_url())
        .insert_header(("Content-Type", JSON))
        .send_body(envelope(eids))
        .await
        .expect("POST to the test collector");
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    (response.status().as_u16(), retry_after)
}

#[actix_rt::test]
async fn always_answers_every_valid_request_with_its_status() {
    let collector = TestCollector::with_faults(Faults::always(503)).await;
    for eid in ["a", "b"] {
        assert_eq!(post(&collector, &[eid]).await, 503);
    }
    assert_eq!(get(&get_url(&collector, "&eid=c")).await, 503);
    assert!(collector.event_ids().is_empty());
    // Another 2xx than 200 is a success: the events are accepted.
    collector.set_faults(Faults::always(204));
    assert_eq!(post(&collector, &["d"]).await, 204);
    assert_eq!(collector.event_ids(), ["d"]);
}

#[actix_rt::test]
async fn max_body_refuses_only_post_bodies_over_the_limit() {
    let limit = envelope(&["x"]).len();
    let collector = TestCollector::with_faults(Faults::max_body(limit)).await;
    assert_eq!(post(&collector, &["x"]).await, 200, "exactly at the limit");
    assert_eq!(post(&collector, &["x", "y"]).await, 413);
    // A GET has no body: a query longer than the limit is not refused.
    let long = get_url(&collector, &format!("&eid=g&pad={}", "p".repeat(limit)));
    assert_eq!(get(&long).await, 200);
    let requests = collector.requests();
    assert!(requests[2].body_len_or_query_len > limit);
    assert_eq!(collector.statuses(), [200, 413, 200]);
    assert_eq!(collector.event_ids(), ["x", "g"]);
}

#[actix_rt::test]
async fn or_applies_the_rules_in_the_order_written_and_retry_after_goes_with_failures() {
    let faults = Faults::fail_first(1, 503)
        .or(Faults::statuses([200, 500, 200]))
        .with_retry_after("7");
    let collector = TestCollector::with_faults(faults).await;

    // Request 0: the first rule's 503 (the second's 200 is not asked for); request 1: the
    // first gives no status, the second 500; request 2 and later: neither, 200.
    assert_eq!(
        post_answer(&collector, &["a"]).await,
        (503, Some("7".into()))
    );
    assert_eq!(
        post_answer(&collector, &["b"]).await,
        (500, Some("7".into()))
    );
    assert_eq!(post_answer(&collector, &["c"]).await, (200, None));
    assert_eq!(post_answer(&collector, &["d"]).await, (200, None));
    assert_eq!(collector.event_ids(), ["c", "d"]);

    // A delay goes with whatever status the rules give, and `or` keeps the first delay.
    let delay = Duration::from_millis(50);
    collector.set_faults(
        Faults::none()
            .with_delay(delay)
            .or(Faults::always(500).with_delay(delay * 100)),
    );
    let t0 = Instant::now();
    assert_eq!(post(&collector, &["e"]).await, 500);
    assert!(t0.elapsed() < delay * 50, "{:?}", t0.elapsed());
    assert_eq!(collector.requests().last().unwrap().delay, Some(delay));
}

#[actix_rt::test]
async fn waits_wake_on_requests_and_time_out() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    // The waiter is already waiting when the request arrives.
    let (events, status) = futures::join!(
        collector.wait_for_events(2, WAIT),
        post(&collector, &["a", "b"])
    );
    assert_eq!(status, 200);
    assert_eq!(events.unwrap().len(), 2);
    assert_eq!(collector.wait_for_requests(1, WAIT).await.unwrap().len(), 1);

    let t0 = Instant::now();
    let err = collector
        .wait_for_events(3, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert!(
        err.contains("timed out") && err.contains("3 accepted events"),
        "{err}"
    );
    assert!(err.contains("#0 POST"), "{err}");
    let err = collector
        .wait_for_requests(2, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(
        err.contains("timed out") && err.contains("2 requests"),
        "{err}"
    );

    // Rejected events do not count as accepted.
    collector.set_faults(Faults::statuses([500]));
    assert_eq!(post(&collector, &["c"]).await, 500);
    assert!(collector
        .wait_for_events(3, Duration::from_millis(50))
        .await
        .is_err());
    assert_eq!(collector.wait_for_requests(2, WAIT).await.unwrap().len(), 2);
}

#[actix_rt::test]
async fn stop_closes_the_port() {
    let collector = TestCollector::with_faults(Faults::none()).await;
    assert_eq!(post(&collector, &["a"]).await, 200);
    collector.stop().await;
    let result = awc::Client::default()
        .post(collector.post_url())
        .insert_header(("Content-Type", JSON))
        .send_body(envelope(&["b"]))
        .await;
    assert!(result.is_err(), "{result:?}");
    assert_eq!(collector.event_ids(), ["a"]);
}

/// Sends a POST to a raw collector; returns the error, whether from sending or from the body.
async fn raw_error(behaviour: RawBehaviour) -> String {
    let raw = RawCollector::start(behaviour).await;
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(500))
        .finish();
    let sent = client
        .post(format!(
            "{}/com.snowplowanalytics.snowplow/tp2",
            raw.endpoint()
        ))
        .insert_header(("Content-Type", JSON))
        .send_body(envelope(&["r"]))
        .await;
    let error = match sent {
        Err(e) => format!("send: {e}"),
        Ok(mut response) => match response.body().await {
            Err(e) => format!("body after status {}: {e}", response.status()),
            Ok(body) => panic!("{behaviour:?}: unexpected success: {body:?}"),
        },
    };
    assert_eq!(raw.wait_for_connections(1, WAIT).await, Ok(1));
    assert_eq!(raw.connections(), 1);
    raw.stop();
    error
}

#[actix_rt::test]
async fn raw_reset_is_a_client_error() {
    let error = raw_error(RawBehaviour::Reset).await;
    assert!(error.starts_with("send:"), "{error}");
    assert!(error.to_lowercase().contains("reset"), "{error}");
}

#[actix_rt::test]
async fn raw_garbage_is_a_client_error() {
    let error = raw_error(RawBehaviour::Garbage).await;
    assert!(error.starts_with("send:"), "{error}");
    assert!(!error.to_lowercase().contains("reset"), "{error}");
}

#[actix_rt::test]
async fn raw_close_mid_head_is_a_client_error() {
    let error = raw_error(RawBehaviour::CloseMidHead).await;
    assert!(error.starts_with("send:"), "{error}");
}

/// awc does not notice a body cut short of its `Content-Length`: it answers 200 with the bytes
/// it got. Pinned so that a change in awc shows up here.
#[actix_rt::test]
async fn raw_close_mid_body_gives_awc_a_short_body() {
    let raw = RawCollector::start(RawBehaviour::CloseMidBody).await;
    let mut response = awc::Client::default()
        .post(format!(
            "{}/com.snowplowanalytics.snowplow/tp2",
            raw.endpoint()
        ))
        .insert_header(("Content-Type", JSON))
        .send_body(envelope(&["r"]))
        .await
        .expect("the head arrives whole");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers().get("content-length").unwrap(), "100");
    let body = response.body().await;
    assert_eq!(body.as_deref().ok(), Some(&b"partial"[..]), "{body:?}");
    assert_eq!(raw.connections(), 1);
}

#[actix_rt::test]
async fn raw_never_answer_times_out() {
    let error = raw_error(RawBehaviour::NeverAnswer).await;
    assert!(error.starts_with("send:"), "{error}");
    assert!(error.to_lowercase().contains("timeout"), "{error}");
}

#[actix_rt::test]
async fn raw_wait_for_connections_times_out_and_stop_refuses() {
    let raw = RawCollector::start(RawBehaviour::NeverAnswer).await;
    let err = raw
        .wait_for_connections(1, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(err.contains("timed out"), "{err}");
    raw.stop();
    let result = awc::Client::default()
        .get(format!("{}/i?e=pv", raw.endpoint()))
        .timeout(Duration::from_millis(500))
        .send()
        .await;
    assert!(result.is_err(), "{result:?}");
}
