//! The `collector` example (`examples/collector.rs` and the collector it shares with the
//! other examples, `examples/common/collector.rs`): it serves the paths of a real Snowplow
//! collector and no others, and `--print` gives each accepted event as one JSON line.

// The example as the examples build it: its collector brings its own copy of the request
// parser (`examples/common/envelope.rs`), the file the test collector includes too.
#[path = "../../examples/collector.rs"]
#[allow(dead_code, clippy::duplicate_mod)]
mod example;

use std::sync::{Arc, Mutex};

use crate::common::support::get_text;
use example::collector::{event_line, Collector, CollectorConfig, EventSink};
use serde_json::Value;

const SCHEMA: &str = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4";
const POST_PATH: &str = "/com.snowplowanalytics.snowplow/tp2";

/// A POST body with one valid event per id.
fn envelope(eids: &[&str]) -> String {
    let events: Vec<String> = eids
        .iter()
        .map(|eid| format!(r#"{{"e":"pv","p":"srv","tv":"t","eid":"{eid}"}}"#))
        .collect();
    format!(r#"{{"schema":"{SCHEMA}","data":[{}]}}"#, events.join(","))
}

/// The query of one valid GET event.
fn query(eid: &str) -> String {
    format!("e=se&p=srv&tv=t&se_ca=c&se_ac=a%20b&eid={eid}")
}

async fn post(collector: &Collector, path: &str, body: String) -> u16 {
    awc::Client::default()
        .post(format!("{}{path}", collector.endpoint()))
        .insert_header(("Content-Type", "application/json; charset=utf-8"))
        .send_body(body)
        .await
        .expect("POST to the example collector")
        .status()
        .as_u16()
}

/// The status and body of a GET.
async fn get(collector: &Collector, path_and_query: &str) -> (u16, String) {
    get_text(&format!("{}{path_and_query}", collector.endpoint())).await
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|arg| arg.to_string()).collect()
}

#[actix_rt::test]
async fn only_the_collector_paths_are_served_and_the_others_count_as_not_found() {
    let collector = Collector::start(CollectorConfig::default()).unwrap();
    let not_found_post = format!("/x{POST_PATH}");

    // Paths a real collector refuses too: an endpoint with a path prefix, any other path.
    assert_eq!(
        post(&collector, &not_found_post, envelope(&["n1"])).await,
        404
    );
    assert_eq!(get(&collector, "/nope").await.0, 404);
    assert_eq!(
        get(&collector, &format!("/sub/i?{}", query("n2"))).await.0,
        404
    );
    // The collector paths.
    assert_eq!(
        post(&collector, POST_PATH, envelope(&["p1", "p2"])).await,
        200
    );
    assert_eq!(get(&collector, &format!("/i?{}", query("g1"))).await.0, 200);
    let vendor_get = format!("/com.snowplowanalytics.snowplow/i?{}", query("g2"));
    assert_eq!(get(&collector, &vendor_get).await.0, 200);
    assert_eq!(get(&collector, "/health").await, (200, "OK".to_owned()));
    // Another method on a served path: 405, not counted.
    assert_eq!(get(&collector, POST_PATH).await.0, 405);

    let (status, stats) = get(&collector, "/stats").await;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(
        [
            &stats["not_found"],
            &stats["requests"],
            &stats["events"],
            &stats["bad_requests"]
        ],
        [3, 3, 4, 0]
    );
    let ids: Vec<String> = collector
        .events()
        .iter()
        .map(|event| format!("{} {}", event.path, event.get("eid").unwrap()))
        .collect();
    assert_eq!(
        ids,
        [
            format!("{POST_PATH} p1"),
            format!("{POST_PATH} p2"),
            "/i g1".to_owned(),
            "/com.snowplowanalytics.snowplow/i g2".to_owned(),
        ]
    );
    assert_eq!(collector.reset().not_found, 3);
    assert_eq!(collector.stats().not_found, 0);
    collector.stop().await.unwrap();
}

#[actix_rt::test]
async fn print_gives_each_accepted_event_as_one_json_line() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = {
        let lines = Arc::clone(&lines);
        EventSink::new(move |line| lines.lock().unwrap().push(line.to_owned()))
    };
    let collector = Collector::start(CollectorConfig {
        print: Some(sink),
        ..CollectorConfig::default()
    })
    .unwrap();

    assert_eq!(
        post(&collector, POST_PATH, envelope(&["p1", "p2"])).await,
        200
    );
    assert_eq!(get(&collector, &format!("/i?{}", query("g1"))).await.0, 200);
    // Nothing for a request that is refused or not served.
    assert_eq!(
        post(&collector, POST_PATH, r#"{"data":[]}"#.to_owned()).await,
        400
    );
    assert_eq!(
        post(&collector, &format!("/x{POST_PATH}"), envelope(&["n1"])).await,
        404
    );

    let lines = lines.lock().unwrap().clone();
    assert_eq!(
        lines,
        [
            r#"{"e":"pv","p":"srv","tv":"t","eid":"p1"}"#,
            r#"{"e":"pv","p":"srv","tv":"t","eid":"p2"}"#,
            r#"{"e":"se","p":"srv","tv":"t","se_ca":"c","se_ac":"a b","eid":"g1"}"#,
        ]
    );
    collector.stop().await.unwrap();
}

#[test]
fn event_line_is_the_fields_in_order_as_a_json_object() {
    let check = |pairs: &[(&str, &str)], expected: &str| {
        let line = event_line(pairs);
        assert_eq!(line, expected);
        // One line, and valid JSON.
        assert!(!line.contains('\n'), "{line}");
        serde_json::from_str::<Value>(&line).unwrap();
    };
    check(&[], "{}");
    check(
        &[
            ("e", "pv"),
            ("eid", "e-1"),
            ("url", "https://x.example/?q=1"),
        ],
        r#"{"e":"pv","eid":"e-1","url":"https://x.example/?q=1"}"#,
    );
    check(
        &[("se_la", "a \"quoted\"\nline\\ é")],
        r#"{"se_la":"a \"quoted\"\nline\\ é"}"#,
    );
}

#[test]
fn the_print_option_parses() {
    let options = example::Options::parse(&args(&["--print", "--quiet"])).unwrap();
    assert!(options.print && options.quiet);
    assert!(!example::Options::parse(&[]).unwrap().print);
    let error = example::Options::parse(&args(&["--print=yes"]))
        .err()
        .unwrap();
    assert!(error.contains("unknown argument"), "{error}");
}
