//! An actix-web app tracked with snowplow-actix: the tracking middleware, a handler that
//! tracks a structured event through the request-scoped tracker, and a graceful shutdown that
//! drains the tracker once the server has stopped.
//!
//! Everything runs on 127.0.0.1: an embedded collector (a tiny actix-web server answering
//! `POST /com.snowplowanalytics.snowplow/tp2` and `GET /i`), the app, and a client that
//! browses the app, then stops it. The example exits by itself.
//!
//! ```text
//! cargo run --example actix_web
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::{Map, Value};
use snowplow_actix::web::{RequestTracker, SnowplowTracking};
use snowplow_actix::{EmitterBuilder, Structured, Tracker};

type Error = Box<dyn std::error::Error>;

#[actix_web::main]
async fn main() -> Result<(), Error> {
    let collector = Collector::start()?;
    println!("collector listening on http://{}", collector.addr);

    // Batches of 10 and a flush every 10 s: the few events below stay buffered until the
    // shutdown drains them.
    let tracker = Tracker::builder("example")
        .app_id("shop")
        .emitter(EmitterBuilder::new(format!("http://{}", collector.addr)))
        .build()?;

    // 127.0.0.1 is trusted as a reverse proxy here, so its `X-Forwarded-For` counts.
    let tracking = SnowplowTracking::new(tracker.clone())
        .trusted_proxy(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .exclude_path("/health")
        .user_id(|request| {
            let user = request.headers().get("x-user-id")?;
            user.to_str().ok().map(str::to_owned)
        });
    let server = HttpServer::new(move || {
        App::new()
            .wrap(tracking.clone())
            .route("/", web::get().to(home))
            .route("/shoes", web::get().to(shoes))
            .route("/basket/{item}", web::post().to(add_to_basket))
            .route("/health", web::get().to(HttpResponse::Ok))
    })
    .workers(2)
    .bind(("127.0.0.1", 0))?;
    let app_addr = server.addrs()[0];
    let server = server.run();
    println!("app listening on http://{app_addr}");

    // A client browses the app, then stops the server, as a signal would.
    let traffic = actix_rt::spawn(browse(app_addr, server.handle()));

    // Runs until the server stops, with in-flight requests completed.
    server.await?;
    traffic.await??;

    println!(
        "server stopped; the collector has {} events so far",
        collector.events().len()
    );
    let report = tracker.shutdown(Duration::from_secs(5)).await?;
    println!(
        "tracker shut down: {} sent, {} dropped, {} still queued, timed out: {}",
        report.sent,
        report.dropped.total(),
        report.queued,
        report.timed_out
    );

    let events = collector.events();
    println!("the collector received {} events:", events.len());
    for event in &events {
        println!("  {}", describe(event));
    }
    collector.handle.stop(true).await;

    if events.len() != 6 || report.dropped.total() != 0 {
        return Err(format!("expected 6 events, the collector has {}", events.len()).into());
    }
    Ok(())
}

async fn home() -> HttpResponse {
    HttpResponse::Ok().body("home")
}

async fn shoes() -> HttpResponse {
    HttpResponse::Ok().body("shoes")
}

/// Tracks `shop/add-to-basket` with the request's subject. A tracking error never fails
/// the request.
async fn add_to_basket(tracking: RequestTracker, item: web::Path<String>) -> HttpResponse {
    match Structured::new("shop", "add-to-basket") {
        Ok(event) => {
            if let Err(error) = tracking.track(event.label(item.as_str())) {
                eprintln!("not tracked: {error}");
            }
        }
        Err(error) => eprintln!("invalid event: {error}"),
    }
    HttpResponse::Created().finish()
}

/// Browses the app: 4 page views (one forwarded by the "proxy"), 2 structured events from the
/// basket handler, an excluded health check; then stops the server.
async fn browse(app: SocketAddr, server: ServerHandle) -> Result<(), String> {
    let result = requests(app).await;
    server.stop(true).await;
    result
}

async fn requests(app: SocketAddr) -> Result<(), String> {
    let client = awc::Client::default();
    let base = format!("http://{app}");
    let ua = ("user-agent", "Mozilla/5.0 (example)");
    let lang = ("accept-language", "en-GB,en;q=0.8");
    let requests = [
        client
            .get(format!("{base}/"))
            .insert_header(ua)
            .insert_header(lang),
        client
            .get(format!("{base}/shoes?colour=red"))
            .insert_header(ua)
            .insert_header(("referer", format!("{base}/"))),
        client
            .get(format!("{base}/shoes?colour=blue"))
            .insert_header(ua)
            .insert_header(("x-forwarded-for", "198.51.100.7")),
        client
            .post(format!("{base}/basket/red-shoes"))
            .insert_header(ua)
            .insert_header(("x-user-id", "user-42")),
        client
            .post(format!("{base}/basket/blue-shoes"))
            .insert_header(ua)
            .insert_header(("x-user-id", "user-42")),
        client.get(format!("{base}/health")),
        client.get(format!("{base}/")).insert_header(lang),
    ];
    for request in requests {
        let url = request.get_uri().to_string();
        let response = request
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        println!("{} {url}", response.status());
        if !response.status().is_success() {
            return Err(format!("{url}: {}", response.status()));
        }
    }
    Ok(())
}

/// One line per event: its type and the fields this example sets.
fn describe(event: &Map<String, Value>) -> String {
    let field = |name: &str| event.get(name).and_then(Value::as_str).unwrap_or("-");
    let what = match field("e") {
        "pv" => format!("page view  {}", field("url")),
        "se" => format!(
            "structured {}/{} {}",
            field("se_ca"),
            field("se_ac"),
            field("se_la")
        ),
        other => format!("event {other}"),
    };
    format!(
        "{what:<52} ip={} ua={:?} lang={} uid={} refr={}",
        field("ip"),
        field("ua"),
        field("lang"),
        field("uid"),
        field("refr")
    )
}

/// A tiny Snowplow collector: stores the events it receives and answers 200.
struct Collector {
    addr: SocketAddr,
    handle: ServerHandle,
    events: Arc<Mutex<Vec<Map<String, Value>>>>,
}

impl Collector {
    fn start() -> Result<Self, Error> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let store = web::Data::from(Arc::clone(&events));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(store.clone())
                .route(
                    "/com.snowplowanalytics.snowplow/tp2",
                    web::post().to(collect_post),
                )
                .route("/i", web::get().to(collect_get))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))?;
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        actix_rt::spawn(server);
        Ok(Self {
            addr,
            handle,
            events,
        })
    }

    fn events(&self) -> Vec<Map<String, Value>> {
        self.events
            .lock()
            .map(|events| events.clone())
            .unwrap_or_default()
    }
}

type Store = web::Data<Mutex<Vec<Map<String, Value>>>>;

/// `POST /com.snowplowanalytics.snowplow/tp2`: a `payload_data` envelope of events.
async fn collect_post(store: Store, body: web::Json<Value>) -> HttpResponse {
    let Some(data) = body.get("data").and_then(Value::as_array) else {
        return HttpResponse::BadRequest().body("not a payload_data envelope");
    };
    let received = data.iter().filter_map(Value::as_object).cloned();
    if let Ok(mut events) = store.lock() {
        events.extend(received);
    }
    HttpResponse::Ok().body("ok")
}

/// `GET /i?…`: one event in the query string.
async fn collect_get(store: Store, request: HttpRequest) -> HttpResponse {
    let Ok(query) = web::Query::<Map<String, Value>>::from_query(request.query_string()) else {
        return HttpResponse::BadRequest().body("invalid query");
    };
    if let Ok(mut events) = store.lock() {
        events.push(query.into_inner());
    }
    HttpResponse::Ok().finish()
}
