//! Quick start: configure a tracker, build and stamp a few events, and print what would be
//! sent to a Snowplow collector.
//!
//! This needs no collector and no network: it prints the POST body of the whole batch and
//! the GET request of one event.
//!
//! ```text
//! cargo run --example quickstart
//! ```

use serde_json::json;
use snowplow_actix::{
    now_ms, wire, Event as _, PageView, Platform, SelfDescribing, SelfDescribingJson, Structured,
    Subject, TrackerSettings, Transaction, TransactionItem,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // What the tracker stamps on every event: namespace (`tna`), app id (`aid`) and a
    // subject (an event's own subject is merged over it).
    let settings = TrackerSettings::new("quickstart")?.app_id("shop").subject(
        Subject::new()
            .platform(Platform::Web)
            .user_id("user-42")
            .screen_resolution(1920, 1080)?
            .lang("en-GB"),
    );

    let mut events = Vec::new();

    // A page view.
    events.extend(
        settings.stamp(
            PageView::new("https://shop.example/shoes")?
                .title("Shoes")
                .referrer("https://search.example/?q=shoes"),
        ),
    );

    // A structured event, with its own subject merged over the tracker's.
    events.extend(
        settings.stamp(
            Structured::new("shop", "add-to-basket")?
                .label("red shoes")
                .property("size 42")
                .value(2.0)?
                .subject(Subject::new().ip_address("203.0.113.9")),
        ),
    );

    // A self-describing event with a context entity.
    let signup = SelfDescribingJson::new(
        "iglu:com.acme/newsletter_signup/jsonschema/1-0-0",
        json!({"list": "weekly", "source": "footer"}),
    )?;
    let basket = SelfDescribingJson::new(
        "iglu:com.acme/basket/jsonschema/1-0-0",
        json!({"items": 2, "total": 89.9}),
    )?;
    events.extend(settings.stamp(SelfDescribing::new(signup).context(basket)));

    // A transaction with two items: stamped as one `tr` event then one `ti` per item.
    events.extend(
        settings.stamp(
            Transaction::new("order-1001", 89.9)?
                .affiliation("web-shop")
                .tax_value(15.0)?
                .shipping(4.9)?
                .city("London")
                .country("GB")
                .currency("GBP")
                .item(
                    TransactionItem::new("sku-red-42", 39.95, 1)?
                        .name("Red shoes")
                        .category("shoes"),
                )
                .item(TransactionItem::new("sku-socks", 5.0, 2)?.name("Socks")),
        ),
    );

    println!("stamped {} events", events.len());
    for event in &events {
        let payload = event.payload();
        println!(
            "  e={:<2}  eid={}  {} fields, {} bytes in a POST body",
            payload.get("e").unwrap_or("?"),
            event.id(),
            payload.len(),
            event.post_size(),
        );
    }

    // `stm` (the time of sending) is set per request, never stored in the event.
    let stm = now_ms();

    let body = wire::post_body(&events, stm);
    println!();
    println!("POST {}  ({})", wire::POST_PATH, wire::POST_CONTENT_TYPE);
    println!("{body}");

    let page_view = &events[0];
    println!();
    println!("GET {}?{}", wire::GET_PATH, page_view.to_query(stm));

    Ok(())
}
