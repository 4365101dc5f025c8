//! Tracker-protocol payloads, end to end through the public API: every event type stamped by
//! [`TrackerSettings::stamp`], compared pair by pair and in order with the expected payload,
//! and validated against the Iglu schemas; invalid input; the GET and POST encodings and
//! their byte sizes.
//!
//! Every event test goes through [`check`]. Self-describing envelopes (`ue_px`, `ue_pr`,
//! `cx`, `co`) are compared as decoded JSON, never as strings.

use std::error::Error;
use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{json, Value};
use snowplow_actix::{
    wire::{self, StampedEvent, TrackerSettings},
    AddToCart, BuildError, Event, EventError, FormChange, FormElement, FormSubmit, LinkClick,
    PagePing, PageView, Platform, RemoveFromCart, ScreenView, SelfDescribing, SelfDescribingJson,
    SiteSearch, Structured, Subject, Tracker, TrackerBuilder, Transaction, TransactionItem,
};
use uuid::Uuid;

use crate::common::iglu;

type TestResult = Result<(), Box<dyn Error>>;
/// Expected name/value pairs of one event, in order. Envelope fields hold the decoded JSON.
type Pairs = Vec<(&'static str, Value)>;

/// `[(name, value), …]` with each value turned into a [`Value`] (`&str`, `String` or JSON).
macro_rules! pairs {
    ($($key:literal => $value:expr),* $(,)?) => {
        vec![$(($key, Value::from($value))),*]
    };
}

/// Placeholder: a lowercase hyphenated UUID v4 equal to [`StampedEvent::id`].
const EID: &str = "<eid>";
/// Placeholder: 13-digit ms taken while the event was stamped.
const DTM: &str = "<dtm>";
/// Placeholder: the time of tracking in ms (the `ttm` of transaction items), as [`DTM`].
const NOW: &str = "<now>";

/// The tracker version every event carries.
const TV: &str = concat!("rust-actix-", env!("CARGO_PKG_VERSION"));
/// A fixed `stm`, as an emitter writes one per request.
const STM: u64 = 1_700_000_000_456;

const URL: &str = "https://shop.example/basket";
const UNICODE: &str = "ć 漢字 🎉";
/// `UNICODE` form-encoded, byte for byte.
const UNICODE_QUERY: &str = "%C4%87+%E6%BC%A2%E5%AD%97+%F0%9F%8E%89";
const ID_1: &str = "d3b07384-d9a0-4c9b-8f3e-1d2a3b4c5d6e";
const ID_2: &str = "0b3a9e2c-5f1d-4e8a-9c7b-2d6f1a3e5b70";

const SCREEN_VIEW: &str = "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0";
const LINK_CLICK: &str = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1";
const ADD_TO_CART: &str = "iglu:com.snowplowanalytics.snowplow/add_to_cart/jsonschema/1-0-0";
const REMOVE_FROM_CART: &str =
    "iglu:com.snowplowanalytics.snowplow/remove_from_cart/jsonschema/1-0-0";
const CHANGE_FORM: &str = "iglu:com.snowplowanalytics.snowplow/change_form/jsonschema/1-0-0";
const SUBMIT_FORM: &str = "iglu:com.snowplowanalytics.snowplow/submit_form/jsonschema/1-0-0";
const SITE_SEARCH: &str = "iglu:com.snowplowanalytics.snowplow/site_search/jsonschema/1-0-0";
const ACME_SIGNUP: &str = "iglu:com.acme/signup/jsonschema/1-0-0";
const ACME_BASKET: &str = "iglu:com.acme/basket/jsonschema/1-0-0";

// ---------------------------------------------------------------------------------------
// The helper
// ---------------------------------------------------------------------------------------

/// Stamps `event` with `settings` and checks each stamped event against one entry of
/// `expected`, in order:
///
/// - the names, in order, exactly as expected;
/// - `eid` ([`EID`]): a lowercase hyphenated UUID v4 equal to [`StampedEvent::id`];
/// - `dtm` ([`DTM`]) and [`NOW`]: 13 digits of ms taken while stamping;
/// - envelope fields: the decoded JSON equals the expected JSON (base64 strictly URL-safe
///   with padding for `ue_px` / `cx`);
/// - every other value: the expected text, exactly;
/// - the payload validates against the Iglu schemas, alone and in a POST body.
fn check<E: Event>(settings: &TrackerSettings, event: E, expected: &[Pairs]) -> Vec<StampedEvent> {
    let before = wall_clock_ms();
    let events = settings.stamp(event).expect("a valid event");
    let after = wall_clock_ms();
    assert_eq!(events.len(), expected.len(), "number of stamped events");
    for (idx, (stamped, want)) in events.iter().zip(expected).enumerate() {
        let got: Vec<(&str, &str)> = stamped.payload().iter().collect();
        let got_keys: Vec<&str> = got.iter().map(|(key, _)| *key).collect();
        let want_keys: Vec<&str> = want.iter().map(|(key, _)| *key).collect();
        assert_eq!(got_keys, want_keys, "event {idx}: names and their order");
        for ((key, value), (_, want)) in got.iter().zip(want) {
            let context = format!("event {idx}, `{key}`");
            match want {
                Value::String(text) if text == EID => assert_event_id(value, stamped, &context),
                Value::String(text) if text == DTM || text == NOW => {
                    assert_ms_between(value, before, after, &context)
                }
                _ if iglu::ENVELOPE_FIELDS.contains(key) => {
                    let decoded = iglu::decode_envelope(key, value)
                        .unwrap_or_else(|err| panic!("{context}: {err}"));
                    assert_eq!(&decoded, want, "{context}");
                }
                Value::String(text) => assert_eq!(value, text, "{context}"),
                other => panic!("{context}: expected JSON {other} for a text field"),
            }
        }
        if let Err(err) = iglu::validate_event(stamped.payload().iter()) {
            panic!("event {idx} is not valid: {err}\n{:?}", stamped.payload());
        }
    }
    if let Err(err) = iglu::validate_post_body(&wire::post_body(&events, STM)) {
        panic!("the POST body is not valid: {err}");
    }
    events
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_millis() as u64
}

fn assert_event_id(value: &str, stamped: &StampedEvent, context: &str) {
    let id = Uuid::parse_str(value).unwrap_or_else(|err| panic!("{context}: {value}: {err}"));
    assert_eq!(id.get_version(), Some(uuid::Version::Random), "{context}");
    assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{context}");
    assert_eq!(
        value,
        id.hyphenated().to_string(),
        "{context}: lowercase, hyphenated"
    );
    assert_eq!(id, stamped.id(), "{context}: equals StampedEvent::id()");
}

fn assert_ms_between(value: &str, before: u64, after: u64, context: &str) {
    assert!(
        value.len() == 13 && value.bytes().all(|b| b.is_ascii_digit()),
        "{context}: `{value}` is not 13 digits of ms"
    );
    let ms: u64 = value.parse().expect("digits");
    assert!(
        (before..=after).contains(&ms),
        "{context}: {ms} not within {before}..={after}"
    );
}

/// The tracker of most tests: namespace `ns`, app id `app`, everything else default.
fn tracker() -> TrackerBuilder {
    Tracker::builder("ns").app_id("app")
}

/// The error a chain kept, as stamping reports it (nothing is stamped).
fn rejected<E: Event>(event: E) -> EventError {
    tracker()
        .built()
        .stamp(event)
        .expect_err("an invalid value is reported when stamping")
}

/// The error a subject kept, as stamping an event that carries it reports it.
fn subject_rejected(subject: Subject) -> EventError {
    rejected(
        PageView::new(URL)
            .expect("a valid page view")
            .subject(subject),
    )
}

/// `settings` with self-describing JSON sent plain (`ue_pr`, `co`) instead of base64.
fn plain_json(settings: &TrackerSettings) -> TrackerSettings {
    let builder = Tracker::builder(settings.namespace())
        .platform(settings.platform())
        .subject(settings.subject().clone())
        .encode_base64(false);
    match settings.app_id() {
        Some(app_id) => builder.app_id(app_id),
        None => builder,
    }
    .built()
}

/// The settings a builder gives: those of these tests are valid.
trait Built {
    fn built(self) -> TrackerSettings;
}

impl Built for TrackerBuilder {
    fn built(self) -> TrackerSettings {
        self.settings().expect("valid settings")
    }
}

/// The decoded `unstruct_event` envelope around `{schema, data}`.
fn ue(schema: &str, data: Value) -> Value {
    json!({
        "schema": iglu::UNSTRUCT_EVENT,
        "data": {"schema": schema, "data": data},
    })
}

/// The decoded `contexts` envelope around the entities.
fn contexts(entities: &[(&str, Value)]) -> Value {
    let data: Vec<Value> = entities
        .iter()
        .map(|(schema, data)| json!({"schema": schema, "data": data}))
        .collect();
    json!({"schema": iglu::CONTEXTS, "data": data})
}

fn basket_context() -> Result<SelfDescribingJson, EventError> {
    SelfDescribingJson::new(ACME_BASKET, json!({"items": 3, "label": UNICODE}))
}

fn basket_entity() -> (&'static str, Value) {
    (ACME_BASKET, json!({"items": 3, "label": UNICODE}))
}

// ---------------------------------------------------------------------------------------
// Event types
// ---------------------------------------------------------------------------------------

#[test]
fn page_view_sends_url_title_and_referrer() -> TestResult {
    let event = PageView::new(URL)?
        .title("Basket")
        .referrer("https://shop.example/");
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "pv", "url" => URL, "page" => "Basket", "refr" => "https://shop.example/",
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn page_view_without_title_or_referrer_sends_only_the_url() -> TestResult {
    check(
        &tracker().built(),
        PageView::new(URL)?,
        &[pairs! {
            "e" => "pv", "url" => URL, "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn page_ping_sends_scroll_offsets_after_the_page_fields() -> TestResult {
    let event = PagePing::new(URL)?
        .title("Basket")
        .referrer("https://shop.example/")
        .offsets(0, 1024, -5, 3000);
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "pp", "url" => URL, "page" => "Basket", "refr" => "https://shop.example/",
            "pp_mix" => "0", "pp_max" => "1024", "pp_miy" => "-5", "pp_may" => "3000",
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn structured_event_sends_category_action_label_property_and_value() -> TestResult {
    let event = Structured::new("shop", "add-to-basket")?
        .label("red shoes")
        .property("size 42")
        .value(2.5);
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "se", "se_ca" => "shop", "se_ac" => "add-to-basket",
            "se_la" => "red shoes", "se_pr" => "size 42", "se_va" => "2.5",
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn self_describing_event_is_sent_base64_as_ue_px_by_default() -> TestResult {
    let data = json!({"plan": "pro", "seats": 3, "trial": false, "tags": ["a", "b"]});
    let event = SelfDescribing::new(SelfDescribingJson::new(ACME_SIGNUP, data.clone())?);
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(ACME_SIGNUP, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn self_describing_event_is_sent_as_plain_json_ue_pr_when_base64_is_off() -> TestResult {
    let data = json!({"plan": "pro"});
    let event = SelfDescribing::new(SelfDescribingJson::new(ACME_SIGNUP, data.clone())?);
    check(
        &tracker().encode_base64(false).built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_pr" => ue(ACME_SIGNUP, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn screen_view_is_a_mobile_screen_view_self_describing_event() -> TestResult {
    let event = ScreenView::new("basket", ID_1)?
        .screen_type("feed")
        .previous_name("home")
        .previous_id(ID_2)
        .previous_type("carousel")
        .transition_type("swipe");
    let data = json!({
        "id": ID_1, "name": "basket", "type": "feed", "previousName": "home",
        "previousId": ID_2, "previousType": "carousel", "transitionType": "swipe",
    });
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(SCREEN_VIEW, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn screen_view_ids_are_sent_lowercase_and_hyphenated_whatever_their_input_form() -> TestResult {
    let upper = ID_1.to_uppercase();
    let braced = format!("{{{ID_2}}}");
    let event = ScreenView::new("basket", &upper)?.previous_id(&braced);
    assert_eq!(event.id(), ID_1);
    check(
        &tracker().encode_base64(false).built(),
        event,
        &[pairs! {
            "e" => "ue",
            "ue_pr" => ue(SCREEN_VIEW, json!({"id": ID_1, "name": "basket", "previousId": ID_2})),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn screen_view_with_random_id_gets_a_uuid_v4() -> TestResult {
    let event = ScreenView::with_random_id("basket")?;
    let id = Uuid::parse_str(event.id())?;
    assert_eq!(id.get_version(), Some(uuid::Version::Random));
    let expected = ue(
        SCREEN_VIEW,
        json!({"id": id.hyphenated().to_string(), "name": "basket"}),
    );
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => expected,
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn transaction_sends_tr_then_one_ti_per_item_and_only_items_carry_ttm() -> TestResult {
    let event = Transaction::new("order-1", 37.5)?
        .affiliation("web shop")
        .tax_value(6.25)
        .shipping(4.5)
        .city("London")
        .state("England")
        .country("UK")
        .currency("GBP")
        .item(
            TransactionItem::new("sku-1", 12.5, 2)?
                .name("Red shoes")
                .category("shoes"),
        )
        .item(TransactionItem::new("sku-2", 7.99, 1)?);
    check(
        &tracker().built(),
        event,
        &[
            pairs! {
                "e" => "tr", "tr_id" => "order-1", "tr_tt" => "37.5", "tr_af" => "web shop",
                "tr_tx" => "6.25", "tr_sh" => "4.5", "tr_ci" => "London", "tr_st" => "England",
                "tr_co" => "UK", "tr_cu" => "GBP",
                "p" => "srv",
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            },
            pairs! {
                "e" => "ti", "ti_id" => "order-1", "ti_sk" => "sku-1", "ti_nm" => "Red shoes",
                "ti_ca" => "shoes", "ti_pr" => "12.5", "ti_qu" => "2", "ti_cu" => "GBP",
                "ttm" => NOW,
                "p" => "srv",
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            },
            pairs! {
                "e" => "ti", "ti_id" => "order-1", "ti_sk" => "sku-2", "ti_pr" => "7.99",
                "ti_qu" => "1", "ti_cu" => "GBP",
                "ttm" => NOW,
                "p" => "srv",
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            },
        ],
    );
    Ok(())
}

#[test]
fn transaction_items_share_the_true_timestamp_subject_and_contexts_of_the_transaction() -> TestResult
{
    let event = Transaction::new("order-2", 12.5)?
        .item(TransactionItem::new("sku-1", 12.5, 1)?)
        .subject(Subject::new().user_id("buyer"))
        .context(basket_context()?)
        .true_timestamp(1_700_000_000_123);
    let events = check(
        &tracker().encode_base64(false).built(),
        event,
        &[
            pairs! {
                "e" => "tr", "tr_id" => "order-2", "tr_tt" => "12.5",
                "co" => contexts(&[basket_entity()]), "ttm" => "1700000000123",
                "p" => "srv", "uid" => "buyer",
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            },
            pairs! {
                "e" => "ti", "ti_id" => "order-2", "ti_sk" => "sku-1", "ti_pr" => "12.5",
                "ti_qu" => "1",
                "co" => contexts(&[basket_entity()]), "ttm" => "1700000000123",
                "p" => "srv", "uid" => "buyer",
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            },
        ],
    );
    assert_ne!(events[0].id(), events[1].id(), "each event has its own eid");
    Ok(())
}

#[test]
fn transaction_without_items_sends_only_tr() -> TestResult {
    check(
        &tracker().built(),
        Transaction::new("order-3", 0.5)?,
        &[pairs! {
            "e" => "tr", "tr_id" => "order-3", "tr_tt" => "0.5",
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn link_click_sends_target_url_and_element_fields() -> TestResult {
    let event = LinkClick::new("https://example.com/offer")?
        .element_id("cta")
        .element_classes(["btn", "btn-primary"])
        .element_target("_blank")
        .element_content(UNICODE);
    let data = json!({
        "targetUrl": "https://example.com/offer", "elementId": "cta",
        "elementClasses": ["btn", "btn-primary"], "elementTarget": "_blank",
        "elementContent": UNICODE,
    });
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(LINK_CLICK, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn link_click_with_only_a_target_url_sends_only_target_url() -> TestResult {
    check(
        &tracker().built(),
        LinkClick::new("https://example.com/")?,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(LINK_CLICK, json!({"targetUrl": "https://example.com/"})),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn add_to_cart_and_remove_from_cart_send_the_product_fields() -> TestResult {
    let data = json!({
        "sku": "sku-1", "quantity": 2, "name": "Red shoes", "category": "shoes",
        "unitPrice": 12.5, "currency": "EUR",
    });
    let added = AddToCart::new("sku-1", 2)?
        .name("Red shoes")
        .category("shoes")
        .unit_price(12.5)
        .currency("EUR");
    check(
        &tracker().built(),
        added,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(ADD_TO_CART, data.clone()),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    let removed = RemoveFromCart::new("sku-1", 2)?
        .name("Red shoes")
        .category("shoes")
        .unit_price(12.5)
        .currency("EUR");
    check(
        &tracker().built(),
        removed,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(REMOVE_FROM_CART, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    let minimal = RemoveFromCart::new("sku-2", -1)?;
    check(
        &tracker().built(),
        minimal,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(REMOVE_FROM_CART, json!({"sku": "sku-2", "quantity": -1})),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn form_change_always_sends_element_id_and_value_and_lowercases_the_input_type() -> TestResult {
    let with_value = FormChange::new("signup", "email", "INPUT", Some("a@b.c"))?
        .input_type("EMAIL")
        .element_classes(["wide"]);
    check(
        &tracker().built(),
        with_value,
        &[pairs! {
            "e" => "ue",
            "ue_px" => ue(CHANGE_FORM, json!({
                "formId": "signup", "elementId": "email", "nodeName": "INPUT",
                "value": "a@b.c", "type": "email", "elementClasses": ["wide"],
            })),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    let without_value = FormChange::new("signup", "", "SELECT", None)?;
    check(
        &tracker().built(),
        without_value,
        &[pairs! {
            "e" => "ue",
            "ue_px" => ue(CHANGE_FORM, json!({
                "formId": "signup", "elementId": "", "nodeName": "SELECT", "value": null,
            })),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn form_submit_sends_form_classes_and_elements() -> TestResult {
    let event = FormSubmit::new("signup")?
        .form_classes(["form", "dark"])
        .element(FormElement::new("email", Some("a@b.c"), "INPUT")?.input_type("email"))
        .element(FormElement::new("about", None, "TEXTAREA")?);
    let data = json!({
        "formId": "signup",
        "formClasses": ["form", "dark"],
        "elements": [
            {"name": "email", "value": "a@b.c", "nodeName": "INPUT", "type": "email"},
            {"name": "about", "value": null, "nodeName": "TEXTAREA"},
        ],
    });
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(SUBMIT_FORM, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn form_submit_without_elements_omits_elements_and_classes() -> TestResult {
    check(
        &tracker().built(),
        FormSubmit::new("signup")?,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(SUBMIT_FORM, json!({"formId": "signup"})),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn site_search_sends_terms_filters_and_result_counts() -> TestResult {
    let event = SiteSearch::new(["red", "shoes"])?
        .filter("size", "42")
        .filter_flag("in_stock", true)
        .total_results(17)
        .page_results(2_147_483_647);
    let data = json!({
        "terms": ["red", "shoes"],
        "filters": {"size": "42", "in_stock": true},
        "totalResults": 17,
        "pageResults": 2_147_483_647,
    });
    check(
        &tracker().built(),
        event,
        &[pairs! {
            "e" => "ue", "ue_px" => ue(SITE_SEARCH, data),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Subject, platform, app id, contexts, timestamps, encodings
// ---------------------------------------------------------------------------------------

#[test]
fn every_subject_setter_sends_its_key_in_the_order_the_setters_were_called() -> TestResult {
    let subject = Subject::new()
        .user_id("user-42")
        .screen_resolution(1920, 1080)
        .viewport(1280, 720)
        .color_depth(24)
        .timezone("Europe/London")
        .lang("en-GB")
        .domain_user_id("duid-1")
        .domain_session_id(ID_1)
        .domain_session_index(3)
        .ip_address("203.0.113.9")
        .useragent("Mozilla/5.0 (X11)")
        .network_user_id(ID_2);
    check(
        &tracker().subject(subject).built(),
        PageView::new(URL)?,
        &[pairs! {
            "e" => "pv", "url" => URL,
            "p" => "srv", "uid" => "user-42", "res" => "1920x1080", "vp" => "1280x720",
            "cd" => "24", "tz" => "Europe/London", "lang" => "en-GB", "duid" => "duid-1",
            "sid" => ID_1, "vid" => "3", "ip" => "203.0.113.9", "ua" => "Mozilla/5.0 (X11)",
            "tnuid" => ID_2,
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn event_subject_wins_at_the_tracker_position_and_its_own_keys_come_after() -> TestResult {
    let settings = tracker()
        .subject(
            Subject::new()
                .user_id("tracker-user")
                .screen_resolution(1920, 1080)
                .lang("en"),
        )
        .built();
    let event = PageView::new(URL)?.subject(
        Subject::new()
            .ip_address("203.0.113.9")
            .user_id("event-user")
            .timezone("Europe/London"),
    );
    check(
        &settings,
        event,
        &[pairs! {
            "e" => "pv", "url" => URL,
            "p" => "srv", "uid" => "event-user", "res" => "1920x1080", "lang" => "en",
            "ip" => "203.0.113.9", "tz" => "Europe/London",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    // The tracker's subject is left as it was for the next event.
    check(
        &settings,
        PageView::new(URL)?,
        &[pairs! {
            "e" => "pv", "url" => URL,
            "p" => "srv", "uid" => "tracker-user", "res" => "1920x1080", "lang" => "en",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn platform_defaults_to_srv_and_is_overridden_by_settings_then_subjects() -> TestResult {
    // (settings, event subject, expected subject pairs): `p` always comes first.
    let cases: [(TrackerSettings, Option<Subject>, Pairs); 4] = [
        (tracker().built(), None, pairs! {"p" => "srv"}),
        (
            tracker().platform(Platform::Mobile).built(),
            None,
            pairs! {"p" => "mob"},
        ),
        (
            tracker()
                .platform(Platform::Mobile)
                .subject(Subject::new().platform(Platform::Web))
                .built(),
            None,
            pairs! {"p" => "web"},
        ),
        (
            tracker()
                .subject(Subject::new().user_id("u").platform(Platform::Web))
                .built(),
            Some(Subject::new().platform(Platform::Tv)),
            pairs! {"p" => "tv", "uid" => "u"},
        ),
    ];
    for (settings, event_subject, subject_pairs) in cases {
        let mut event = Structured::new("c", "a")?;
        if let Some(subject) = event_subject {
            event = event.subject(subject);
        }
        let mut expected = pairs! { "e" => "se", "se_ca" => "c", "se_ac" => "a" };
        expected.extend(subject_pairs);
        expected.extend(pairs! {
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        });
        check(&settings, event, &[expected]);
    }
    Ok(())
}

#[test]
fn every_platform_code_is_accepted_and_sent_as_p() -> TestResult {
    for code in ["pc", "tv", "mob", "cnsl", "iot", "web", "srv", "app"] {
        let platform: Platform = code.parse()?;
        check(
            &tracker().platform(platform).built(),
            PageView::new(URL)?,
            &[pairs! {
                "e" => "pv", "url" => URL, "p" => code,
                "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
            }],
        );
    }
    Ok(())
}

#[test]
fn app_id_is_sent_last_when_set_and_omitted_when_absent_or_empty() -> TestResult {
    let without = pairs! {
        "e" => "pv", "url" => URL, "p" => "srv",
        "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "other",
    };
    check(
        &TrackerSettings::new("other")?,
        PageView::new(URL)?,
        std::slice::from_ref(&without),
    );
    check(
        &Tracker::builder("other").app_id("").settings()?,
        PageView::new(URL)?,
        &[without],
    );
    check(
        &Tracker::builder("other").app_id(UNICODE).settings()?,
        PageView::new(URL)?,
        &[pairs! {
            "e" => "pv", "url" => URL, "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "other", "aid" => UNICODE,
        }],
    );
    Ok(())
}

#[test]
fn contexts_are_sent_as_cx_in_base64_and_as_co_in_plain_json() -> TestResult {
    let link = (
        LINK_CLICK,
        json!({"targetUrl": "https://example.com/", "elementId": "x"}),
    );
    let entities = [basket_entity(), link.clone()];
    let event = || -> Result<Structured, EventError> {
        Ok(Structured::new("c", "a")?
            .context(basket_context()?)
            .contexts([SelfDescribingJson::new(link.0, link.1.clone())?]))
    };
    check(
        &tracker().built(),
        event()?,
        &[pairs! {
            "e" => "se", "se_ca" => "c", "se_ac" => "a", "cx" => contexts(&entities),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    check(
        &tracker().encode_base64(false).built(),
        event()?,
        &[pairs! {
            "e" => "se", "se_ca" => "c", "se_ac" => "a", "co" => contexts(&entities),
            "p" => "srv",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn true_timestamp_is_sent_as_ttm_after_contexts_and_before_the_subject() -> TestResult {
    let event = PageView::new(URL)?
        .true_timestamp(1_700_000_000_123)
        .context(basket_context()?);
    check(
        &tracker().subject(Subject::new().user_id("u")).built(),
        event,
        &[pairs! {
            "e" => "pv", "url" => URL, "cx" => contexts(&[basket_entity()]),
            "ttm" => "1700000000123", "p" => "srv", "uid" => "u",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    Ok(())
}

#[test]
fn keys_follow_the_protocol_order_with_every_part_present() -> TestResult {
    for (base64, ue_key, cx_key) in [(true, "ue_px", "cx"), (false, "ue_pr", "co")] {
        let event = SelfDescribing::new(SelfDescribingJson::new(ACME_SIGNUP, json!({"a": 1}))?)
            .context(basket_context()?)
            .true_timestamp(1_600_000_000_000)
            .subject(Subject::new().user_id("event-user").ip_address("10.0.0.1"));
        let settings = tracker()
            .encode_base64(base64)
            .subject(Subject::new().lang("fr").user_id("tracker-user"))
            .built();
        let stamped = check(
            &settings,
            event,
            &[vec![
                ("e", json!("ue")),
                (ue_key, ue(ACME_SIGNUP, json!({"a": 1}))),
                (cx_key, contexts(&[basket_entity()])),
                ("ttm", json!("1600000000000")),
                ("p", json!("srv")),
                ("lang", json!("fr")),
                ("uid", json!("event-user")),
                ("ip", json!("10.0.0.1")),
                ("eid", json!(EID)),
                ("dtm", json!(DTM)),
                ("tv", json!(TV)),
                ("tna", json!("ns")),
                ("aid", json!("app")),
            ]],
        );
        assert_eq!(stamped.len(), 1);
    }
    Ok(())
}

#[test]
fn unicode_values_are_sent_unchanged() -> TestResult {
    let url = format!("https://shop.example/{UNICODE}");
    let settings = tracker().subject(Subject::new().user_id(UNICODE)).built();
    check(
        &settings,
        PageView::new(url.as_str())?.title(UNICODE),
        &[pairs! {
            "e" => "pv", "url" => url.as_str(), "page" => UNICODE, "p" => "srv", "uid" => UNICODE,
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    let data = json!({"name": UNICODE, UNICODE: [UNICODE]});
    for (settings, key) in [
        (settings.clone(), "ue_px"),
        (plain_json(&settings), "ue_pr"),
    ] {
        let event = SelfDescribing::new(SelfDescribingJson::new(ACME_SIGNUP, data.clone())?);
        let mut expected = vec![("e", json!("ue")), (key, ue(ACME_SIGNUP, data.clone()))];
        expected.extend(pairs! {
            "p" => "srv", "uid" => UNICODE,
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        });
        check(&settings, event, &[expected]);
    }
    let stamped = check(
        &settings,
        Structured::new(UNICODE, UNICODE)?.label(UNICODE),
        &[pairs! {
            "e" => "se", "se_ca" => UNICODE, "se_ac" => UNICODE, "se_la" => UNICODE,
            "p" => "srv", "uid" => UNICODE,
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    // POST: UTF-8 as is (no \u escapes); GET: every byte percent-encoded.
    let post = stamped[0].to_post_json(STM);
    assert!(post.contains(&format!(r#""se_la":"{UNICODE}""#)), "{post}");
    let query = stamped[0].to_query(STM);
    assert!(
        query.contains(&format!("&se_la={UNICODE_QUERY}&")),
        "{query}"
    );
    Ok(())
}

#[test]
fn tracker_version_is_rust_actix_and_the_crate_version() -> TestResult {
    assert_eq!(TV, format!("rust-actix-{}", env!("CARGO_PKG_VERSION")));
    assert_eq!(snowplow_actix::wire::TRACKER_VERSION, TV);
    let stamped = tracker()
        .built()
        .stamp(PageView::new(URL)?)
        .expect("a valid event");
    assert_eq!(stamped[0].payload().get("tv"), Some(TV));
    Ok(())
}

#[test]
fn every_stamped_event_gets_its_own_event_id() -> TestResult {
    let settings = tracker().built();
    let ids: std::collections::HashSet<Uuid> = (0..100)
        .map(|_| {
            settings
                .stamp(PageView::new(URL).expect("a URL"))
                .expect("a valid event")[0]
                .id()
        })
        .collect();
    assert_eq!(ids.len(), 100);
    Ok(())
}

#[test]
fn numbers_are_sent_as_decimal_text_that_parses_back_to_the_same_value() -> TestResult {
    let values = [
        2.5,
        7.99,
        0.1 + 0.2,
        -3.75,
        1e16,
        1.5e-7,
        123_456_789.123,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    for value in values {
        let stamped = tracker()
            .built()
            .stamp(Structured::new("c", "a")?.value(value))
            .expect("a valid event");
        let text = stamped[0].payload().get("se_va").expect("se_va");
        assert_eq!(text.parse::<f64>()?, value, "se_va {text}");
        let stamped = tracker()
            .built()
            .stamp(Transaction::new("o", value)?)
            .expect("a valid event");
        let text = stamped[0].payload().get("tr_tt").expect("tr_tt");
        assert_eq!(text.parse::<f64>()?, value, "tr_tt {text}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Invalid input: typed errors
// ---------------------------------------------------------------------------------------

#[test]
fn empty_page_url_is_an_empty_field_error() {
    let expected = EventError::EmptyField { field: "page_url" };
    assert_eq!(PageView::new("").unwrap_err(), expected);
    assert_eq!(PagePing::new("").unwrap_err(), expected);
}

#[test]
fn empty_structured_category_or_action_is_an_empty_field_error() {
    assert_eq!(
        Structured::new("", "a").unwrap_err(),
        EventError::EmptyField { field: "category" }
    );
    assert_eq!(
        Structured::new("c", "").unwrap_err(),
        EventError::EmptyField { field: "action" }
    );
}

#[test]
fn empty_required_fields_of_the_other_events_are_empty_field_errors() {
    let field = |field| EventError::EmptyField { field };
    assert_eq!(LinkClick::new("").unwrap_err(), field("target_url"));
    assert_eq!(Transaction::new("", 1.0).unwrap_err(), field("order_id"));
    assert_eq!(TransactionItem::new("", 1.0, 1).unwrap_err(), field("sku"));
    assert_eq!(AddToCart::new("", 1).unwrap_err(), field("sku"));
    assert_eq!(RemoveFromCart::new("", 1).unwrap_err(), field("sku"));
    assert_eq!(
        FormChange::new("", "e", "INPUT", None).unwrap_err(),
        field("form_id")
    );
    assert_eq!(FormSubmit::new("").unwrap_err(), field("form_id"));
}

#[test]
fn invalid_platform_string_is_an_invalid_platform_error() {
    for code in ["desktop", "PC", "", " srv"] {
        assert_eq!(
            code.parse::<Platform>(),
            Err(EventError::InvalidPlatform(code.to_owned()))
        );
    }
}

#[test]
fn zero_screen_resolution_or_viewport_is_a_zero_dimension_error() {
    let resolution = EventError::ZeroDimension {
        field: "screen_resolution",
    };
    let viewport = EventError::ZeroDimension { field: "viewport" };
    assert_eq!(
        subject_rejected(Subject::new().screen_resolution(0, 1080)),
        resolution
    );
    assert_eq!(
        subject_rejected(Subject::new().screen_resolution(1920, 0)),
        resolution
    );
    assert_eq!(subject_rejected(Subject::new().viewport(0, 720)), viewport);
    assert_eq!(subject_rejected(Subject::new().viewport(1280, 0)), viewport);
    assert_eq!(subject_rejected(Subject::new().viewport(0, 0)), viewport);
}

#[test]
fn screen_view_without_name_or_id_or_with_a_non_uuid_id_is_an_error() -> TestResult {
    assert_eq!(
        ScreenView::new("", ID_1).unwrap_err(),
        EventError::EmptyField { field: "name" }
    );
    assert_eq!(
        ScreenView::with_random_id("").unwrap_err(),
        EventError::EmptyField { field: "name" }
    );
    assert_eq!(
        ScreenView::new("basket", "").unwrap_err(),
        EventError::EmptyField { field: "id" }
    );
    for bad in ["not-a-uuid", "d3b07384-d9a0-4c9b-8f3e-1d2a3b4c5d6", "12345"] {
        assert_eq!(
            ScreenView::new("basket", bad).unwrap_err(),
            EventError::InvalidUuid {
                field: "id",
                value: bad.to_owned()
            }
        );
    }
    assert_eq!(
        rejected(ScreenView::new("basket", ID_1)?.previous_id("previous")),
        EventError::InvalidUuid {
            field: "previous_id",
            value: "previous".to_owned()
        }
    );
    Ok(())
}

#[test]
fn invalid_form_node_name_or_input_type_is_an_error() -> TestResult {
    for bad in ["DIV", "input", ""] {
        assert_eq!(
            FormChange::new("f", "e", bad, None).unwrap_err(),
            EventError::InvalidNodeName(bad.to_owned())
        );
        assert_eq!(
            FormElement::new("e", None, bad).unwrap_err(),
            EventError::InvalidNodeName(bad.to_owned())
        );
    }
    for bad in ["fancy", "", "text "] {
        assert_eq!(
            rejected(FormChange::new("f", "e", "INPUT", None)?.input_type(bad)),
            EventError::InvalidInputType(bad.to_owned())
        );
        assert_eq!(
            rejected(
                FormSubmit::new("f")?
                    .element(FormElement::new("e", None, "INPUT")?.input_type(bad))
            ),
            EventError::InvalidInputType(bad.to_owned())
        );
    }
    Ok(())
}

#[test]
fn form_texts_over_the_schema_limits_are_too_long_errors() -> TestResult {
    let long_id = "f".repeat(4_097);
    let long_value = "v".repeat(65_536);
    assert_eq!(
        FormSubmit::new(long_id.clone()).unwrap_err(),
        EventError::TooLong {
            field: "form_id",
            max: 4_096
        }
    );
    assert_eq!(
        FormChange::new("f", long_id.clone(), "INPUT", None).unwrap_err(),
        EventError::TooLong {
            field: "element_id",
            max: 4_096
        }
    );
    assert_eq!(
        FormChange::new("f", "e", "INPUT", Some(&long_value)).unwrap_err(),
        EventError::TooLong {
            field: "value",
            max: 65_535
        }
    );
    assert_eq!(
        FormElement::new("name", Some(&long_value), "INPUT").unwrap_err(),
        EventError::TooLong {
            field: "value",
            max: 65_535
        }
    );
    assert_eq!(
        rejected(FormSubmit::new("f")?.form_classes([long_id])),
        EventError::TooLong {
            field: "form_classes",
            max: 4_096
        }
    );
    // At the limit, the event is accepted and validates.
    let at_limit = FormChange::new("f", "e", "INPUT", Some(&long_value[1..]))?;
    let stamped = tracker().built().stamp(at_limit).expect("a valid event");
    crate::common::iglu::validate_event(stamped[0].payload().iter())?;
    Ok(())
}

#[test]
fn self_describing_data_that_is_not_an_object_is_a_not_an_object_error() {
    for data in [
        json!(3),
        json!("text"),
        json!([1, 2]),
        json!(null),
        json!(true),
    ] {
        assert_eq!(
            SelfDescribingJson::new(ACME_SIGNUP, data).unwrap_err(),
            EventError::NotAnObject {
                schema: ACME_SIGNUP.to_owned()
            }
        );
    }
}

#[test]
fn schema_that_is_not_an_iglu_uri_is_an_invalid_schema_uri_error() {
    for bad in [
        "",
        "test.sde.schema",
        "iglu:com.acme/signup/jsonschema/1-0",
        "iglu:com.acme/signup/jsonschema/1-0-x",
        "iglu:com.acme/sign.up/jsonschema/1-0-0",
        "iglu:com.acme/signup/jsonschema/1-0-0/extra",
        "iglu:/signup/jsonschema/1-0-0",
        "iglu:com acme/signup/jsonschema/1-0-0",
        "http://com.acme/signup/jsonschema/1-0-0",
    ] {
        assert_eq!(
            SelfDescribingJson::new(bad, json!({})).unwrap_err(),
            EventError::InvalidSchemaUri(bad.to_owned()),
            "{bad:?}"
        );
    }
}

#[test]
fn self_describing_json_accepts_exactly_the_uris_the_envelope_schemas_accept() {
    for uri in [
        "iglu:com.acme/signup/jsonschema/1-0-0",
        "iglu:com.acme-x_y/e_v-t/jsonschema/10-20-30",
        "iglu:A.B/C_D/E-F/0-0-0",
        "iglu:-/_/-/1-1-1",
        "iglu:com.acme/sign.up/jsonschema/1-0-0",
        "iglu:com.acme/signup/json.schema/1-0-0",
        "iglu:com.acme/signup/jsonschema/1-0-0/",
        "iglu:com.acme/signup/jsonschema/1-0-0\n",
        "iglu:com.acme/signup/jsonschema/1-0-",
        "iglu:ä/signup/jsonschema/1-0-0",
        "iglu:com.acme/signup/jsonschema/\u{661}-0-0",
        "iglu:com.acme//jsonschema/1-0-0",
        "IGLU:com.acme/signup/jsonschema/1-0-0",
    ] {
        let envelope = json!({"schema": uri, "data": {}});
        let schema_accepts = iglu::validate(iglu::UNSTRUCT_EVENT, &envelope).is_ok();
        assert_eq!(
            iglu::validate(iglu::CONTEXTS, &json!([envelope])).is_ok(),
            schema_accepts,
            "{uri:?}"
        );
        assert_eq!(
            SelfDescribingJson::new(uri, json!({})).is_ok(),
            schema_accepts,
            "{uri:?}"
        );
    }
}

#[test]
fn nan_or_infinite_numbers_are_a_non_finite_number_error() -> TestResult {
    let field = |field| EventError::NonFiniteNumber { field };
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert_eq!(
            rejected(Structured::new("c", "a")?.value(bad)),
            field("value")
        );
        assert_eq!(
            Transaction::new("o", bad).unwrap_err(),
            field("total_value")
        );
        assert_eq!(
            rejected(Transaction::new("o", 1.0)?.tax_value(bad)),
            field("tax_value")
        );
        assert_eq!(
            rejected(Transaction::new("o", 1.0)?.shipping(bad)),
            field("shipping")
        );
        assert_eq!(
            TransactionItem::new("s", bad, 1).unwrap_err(),
            field("price")
        );
        assert_eq!(
            rejected(AddToCart::new("s", 1)?.unit_price(bad)),
            field("unit_price")
        );
        assert_eq!(
            rejected(RemoveFromCart::new("s", 1)?.unit_price(bad)),
            field("unit_price")
        );
    }
    Ok(())
}

#[test]
fn site_search_without_terms_or_with_too_many_results_is_an_error() -> TestResult {
    assert_eq!(
        SiteSearch::new(Vec::<String>::new()).unwrap_err(),
        EventError::EmptyField { field: "terms" }
    );
    let max = 2_147_483_647;
    assert_eq!(
        rejected(SiteSearch::new(["a"])?.total_results(max + 1)),
        EventError::OutOfRange {
            field: "total_results",
            max: u64::from(max)
        }
    );
    assert_eq!(
        rejected(SiteSearch::new(["a"])?.page_results(u32::MAX)),
        EventError::OutOfRange {
            field: "page_results",
            max: u64::from(max)
        }
    );
    Ok(())
}

#[test]
fn empty_namespace_is_an_empty_namespace_build_error() {
    assert_eq!(
        TrackerSettings::new("").unwrap_err(),
        BuildError::EmptyNamespace
    );
}

// ---------------------------------------------------------------------------------------
// GET: query encoding
// ---------------------------------------------------------------------------------------

#[test]
fn get_query_is_form_encoded_byte_for_byte_like_the_python_baseline() -> TestResult {
    let settings = Tracker::builder("ns")
        .app_id("app")
        .platform(Platform::Pc)
        .subject(
            Subject::new()
                .user_id("u 1")
                .color_depth(24)
                .domain_session_index(3),
        )
        .settings()?;
    let event = PageView::new("http://x.com/a b?c=d~e*f")?
        .title("Tïtle (x)")
        .context(basket_context()?)
        .true_timestamp(1_700_000_000_123);
    let stamped = check(
        &settings,
        event,
        &[pairs! {
            "e" => "pv", "url" => "http://x.com/a b?c=d~e*f", "page" => "Tïtle (x)",
            "cx" => contexts(&[basket_entity()]), "ttm" => "1700000000123",
            "p" => "pc", "uid" => "u 1", "cd" => "24", "vid" => "3",
            "eid" => EID, "dtm" => DTM, "tv" => TV, "tna" => "ns", "aid" => "app",
        }],
    );
    let event = &stamped[0];
    let payload = event.payload();
    let cx = payload.get("cx").expect("cx");
    assert!(
        cx.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
        "cx is URL-safe base64: {cx}"
    );
    let expected = format!(
        "e=pv&url=http%3A%2F%2Fx.com%2Fa+b%3Fc%3Dd~e%2Af&page=T%C3%AFtle+%28x%29&cx={}\
         &ttm=1700000000123&p=pc&uid=u+1&cd=24&vid=3&eid={}&dtm={}&tv={TV}&tna=ns&aid=app\
         &stm=1700000000456",
        cx.replace('=', "%3D"),
        event.id(),
        payload.get("dtm").expect("dtm"),
    );
    assert_eq!(event.to_query(STM), expected);
    Ok(())
}

#[test]
fn get_query_encodes_reserved_characters_like_quote_plus() -> TestResult {
    let settings = tracker()
        .subject(
            Subject::new()
                .timezone("Europe London")
                .useragent("Mozilla/5.0 (compatible; MSIE 9.0; Windows NT 6.0; Trident/5.0)"),
        )
        .built();
    let event = PageView::new("http://savethearctic.org")?
        .title("Save The Arctic")
        .referrer("a&b=c+d ~*:/ ï");
    let query = settings.stamp(event).expect("a valid event")[0].to_query(STM);
    for piece in [
        "e=pv&",
        "&url=http%3A%2F%2Fsavethearctic.org&",
        "&page=Save+The+Arctic&",
        "&refr=a%26b%3Dc%2Bd+~%2A%3A%2F+%C3%AF&",
        "&tz=Europe+London&",
        "&ua=Mozilla%2F5.0+%28compatible%3B+MSIE+9.0%3B+Windows+NT+6.0%3B+Trident%2F5.0%29&",
        "&stm=1700000000456",
    ] {
        assert!(query.contains(piece), "{piece} not in {query}");
    }
    assert!(query.ends_with("&stm=1700000000456"), "stm last: {query}");
    Ok(())
}

#[test]
fn get_query_decodes_back_to_the_payload_pairs_then_stm() -> TestResult {
    let json_event = || -> Result<SelfDescribing, EventError> {
        Ok(SelfDescribing::new(SelfDescribingJson::new(
            ACME_SIGNUP,
            json!({"q": "a&b=c+d \"quoted\" ~*", "u": UNICODE}),
        )?)
        .context(basket_context()?))
    };
    for settings in [tracker(), tracker().encode_base64(false)] {
        let settings = settings
            .subject(Subject::new().user_id(UNICODE).timezone("A/B C"))
            .built();
        for event in settings.stamp(json_event()?).expect("a valid event") {
            let query = event.to_query(STM);
            assert!(
                query
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-~%+&=".contains(&b)),
                "only unreserved bytes, escapes and separators: {query}"
            );
            let mut expected: Vec<(String, String)> = event
                .payload()
                .iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            expected.push(("stm".to_owned(), STM.to_string()));
            assert_eq!(form_decode(&query), expected);
        }
    }
    Ok(())
}

/// Decodes an `application/x-www-form-urlencoded` query into its pairs, in order.
fn form_decode(query: &str) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut idx = 0;
        while idx < bytes.len() {
            match bytes[idx] {
                b'+' => out.push(b' '),
                b'%' => {
                    let hex = std::str::from_utf8(&bytes[idx + 1..idx + 3]).expect("ASCII hex");
                    out.push(u8::from_str_radix(hex, 16).expect("two hex digits"));
                    idx += 2;
                }
                byte => out.push(byte),
            }
            idx += 1;
        }
        String::from_utf8(out).expect("UTF-8")
    }
    query
        .split('&')
        .map(|pair| {
            let (key, value) = pair.split_once('=').expect("name=value");
            (decode(key), decode(value))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// POST: event objects, bodies, sizes
// ---------------------------------------------------------------------------------------

/// A JSON object read as its members in order, every value a string.
struct OrderedStrings(Vec<(String, String)>);

impl<'de> Deserialize<'de> for OrderedStrings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> Visitor<'de> for Members {
            type Value = OrderedStrings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object whose values are all strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, String>()? {
                    members.push(member);
                }
                Ok(OrderedStrings(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

#[test]
fn post_event_object_is_json_with_string_values_in_payload_order_and_stm_last() -> TestResult {
    let tricky = "quote \" backslash \\ slash / newline \n tab \t bell \u{7} nul \u{0}";
    let settings = tracker()
        .subject(Subject::new().user_id(tricky).color_depth(24))
        .built();
    for event in sample_events(&settings)?.into_iter().chain(
        settings
            .stamp(Structured::new(tricky, UNICODE)?)
            .expect("a valid event"),
    ) {
        let json = event.to_post_json(STM);
        let OrderedStrings(members) =
            serde_json::from_str(&json).unwrap_or_else(|err| panic!("{err}: {json}"));
        let mut expected: Vec<(String, String)> = event
            .payload()
            .iter()
            .map(|(key, value)| (key.to_owned(), value.to_owned()))
            .collect();
        expected.push(("stm".to_owned(), "1700000000456".to_owned()));
        assert_eq!(members, expected);
        iglu::validate_event(members).map_err(|err| format!("{err}: {json}"))?;
    }
    Ok(())
}

/// One stamped event of every kind, unicode and both encodings included.
fn sample_events(settings: &TrackerSettings) -> Result<Vec<StampedEvent>, Box<dyn Error>> {
    let mut events = Vec::new();
    for settings in [settings.clone(), plain_json(settings)] {
        events.extend(settings.stamp(PageView::new(URL)?.title(UNICODE))?);
        events.extend(settings.stamp(PagePing::new(URL)?.offsets(0, 10, 0, 20))?);
        events.extend(
            settings.stamp(
                Structured::new("shop", "buy")?
                    .label(UNICODE)
                    .value(2.5)
                    .context(basket_context()?)
                    .true_timestamp(1_700_000_000_123),
            )?,
        );
        events.extend(settings.stamp(SelfDescribing::new(SelfDescribingJson::new(
            ACME_SIGNUP,
            json!({"u": UNICODE}),
        )?))?);
        events.extend(settings.stamp(ScreenView::new(UNICODE, ID_1)?)?);
        events.extend(
            settings.stamp(
                Transaction::new("o", 25.0)?
                    .currency("EUR")
                    .item(TransactionItem::new("s1", 12.5, 1)?.name(UNICODE))
                    .item(TransactionItem::new("s2", 12.5, 1)?),
            )?,
        );
        events.extend(settings.stamp(LinkClick::new(format!("{URL}/{UNICODE}"))?)?);
        events.extend(settings.stamp(AddToCart::new("s", 1)?.name(UNICODE))?);
        events.extend(settings.stamp(RemoveFromCart::new("s", 1)?)?);
        events.extend(settings.stamp(FormChange::new("f", "e", "TEXTAREA", Some(UNICODE))?)?);
        events.extend(
            settings.stamp(FormSubmit::new("f")?.element(FormElement::new(
                "e",
                Some(UNICODE),
                "INPUT",
            )?))?,
        );
        events.extend(settings.stamp(SiteSearch::new([UNICODE])?.filter("k", UNICODE))?);
        events.extend(
            settings.stamp(PageView::new(URL)?.subject(Subject::new().useragent(UNICODE)))?,
        );
    }
    Ok(events)
}

#[test]
fn post_bodies_of_1_10_and_100_events_validate_and_have_the_computed_size() -> TestResult {
    let settings = tracker()
        .subject(Subject::new().user_id(UNICODE).lang("en"))
        .built();
    let samples = sample_events(&settings)?;
    let mut all = Vec::new();
    while all.len() < 100 {
        all.extend(sample_events(&settings)?);
    }
    assert!(samples.len() > 10);
    for count in [1, 10, 100] {
        let events = &all[..count];
        let body = wire::post_body(events, STM);
        iglu::validate_post_body(&body).map_err(|err| format!("{count} events: {err}"))?;
        assert_eq!(
            body.len(),
            wire::post_body_size(events.iter().map(StampedEvent::post_size)),
            "{count} events"
        );
        // Grown one event at a time, as an emitter charges a request: in the unit tests of
        // `wire::body` (the charge is crate-private).

        let parsed: Value = serde_json::from_str(&body)?;
        assert_eq!(parsed["schema"], json!(iglu::PAYLOAD_DATA));
        let data = parsed["data"].as_array().expect("a data array");
        assert_eq!(data.len(), count);
        for (event, object) in events.iter().zip(data) {
            assert_eq!(object["eid"], json!(event.id().to_string()));
            assert_eq!(object["stm"], json!("1700000000456"));
        }

        let mut reused = String::from("left over");
        reused.clear();
        wire::push_post_body(&mut reused, events, STM);
        assert_eq!(reused, body, "push_post_body writes the same body");
    }
    Ok(())
}

#[test]
fn event_sizes_equal_the_length_of_their_post_and_get_encodings() -> TestResult {
    let settings = tracker()
        .subject(Subject::new().user_id(UNICODE).ip_address("10.0.0.1"))
        .built();
    for event in sample_events(&settings)? {
        for stm in [1_000_000_000_000, STM, 9_999_999_999_999] {
            assert_eq!(
                event.post_size(),
                event.to_post_json(stm).len(),
                "{:?}",
                event.payload()
            );
            assert_eq!(
                event.query_size(),
                event.to_query(stm).len(),
                "{:?}",
                event.payload()
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The validator itself: it must reject what the collector would
// ---------------------------------------------------------------------------------------

#[test]
fn iglu_validator_rejects_events_that_break_the_schemas() {
    let base = [("e", "pv"), ("url", URL), ("p", "srv"), ("tv", TV)];
    assert_eq!(iglu::validate_event(base), Ok(()));

    let without_platform = [("e", "pv"), ("url", URL), ("tv", TV)];
    assert!(iglu::validate_event(without_platform).is_err());
    let unknown_key = [("e", "pv"), ("p", "srv"), ("tv", TV), ("nope", "1")];
    assert!(iglu::validate_event(unknown_key).is_err());
    let repeated = [("e", "pv"), ("p", "srv"), ("tv", TV), ("p", "web")];
    assert!(iglu::validate_event(repeated).is_err());

    let ue_pr = |data: Value| {
        let envelope = json!({"schema": iglu::UNSTRUCT_EVENT, "data": data}).to_string();
        iglu::validate_event([("e", "ue"), ("p", "srv"), ("tv", TV), ("ue_pr", &envelope)])
    };
    assert_eq!(
        ue_pr(json!({"schema": SCREEN_VIEW, "data": {"id": ID_1, "name": "s"}})),
        Ok(())
    );
    for bad_id in ["not-a-uuid", "d3b07384d9a04c9b8f3e1d2a3b4c5d6e"] {
        let data = json!({"schema": SCREEN_VIEW, "data": {"id": bad_id, "name": "s"}});
        assert!(ue_pr(data).is_err(), "screen view id {bad_id}");
        let data = json!({
            "schema": SCREEN_VIEW,
            "data": {"id": ID_1, "name": "s", "previousId": bad_id},
        });
        assert!(ue_pr(data).is_err(), "screen view previousId {bad_id}");
    }
    assert!(ue_pr(json!({"schema": LINK_CLICK, "data": {"targetUrl": ""}})).is_err());
    assert!(ue_pr(json!({"schema": "not-iglu", "data": {}})).is_err());
    assert_eq!(
        ue_pr(json!({"schema": ACME_SIGNUP, "data": {"anything": 1}})),
        Ok(()),
        "an event of a schema not available locally is checked by its envelope only"
    );

    // `ue_px` and `cx` must be URL-safe base64 with padding: this sample needs both (`?>`
    // encodes to `Pz4` then `-` or `+`, and its length is not a multiple of 3).
    let json = contexts(&[(ACME_BASKET, json!({"k": "?>"}))]).to_string();
    let standard = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &json);
    let url_safe = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, &json);
    let unpadded = url_safe.trim_end_matches('=');
    assert_ne!(unpadded, url_safe, "the sample needs padding");
    assert_ne!(standard, url_safe, "the sample needs the URL-safe alphabet");
    assert!(iglu::decode_envelope("cx", &url_safe).is_ok());
    assert!(iglu::decode_envelope("cx", unpadded).is_err());
    assert!(iglu::decode_envelope("cx", &standard).is_err());
    let with_cx =
        |cx: &str| iglu::validate_event([("e", "pv"), ("p", "srv"), ("tv", TV), ("cx", cx)]);
    assert_eq!(with_cx(&url_safe), Ok(()));
    let old_contexts = json.replace("1-0-1", "1-0-0");
    let old_contexts =
        base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE, old_contexts);
    assert!(with_cx(&old_contexts).is_err(), "contexts 1-0-0");
}

#[test]
fn iglu_validator_rejects_post_bodies_that_break_the_envelope() {
    let event = json!({"e": "pv", "p": "srv", "tv": TV});
    let body = |schema: &str, data: Value| json!({"schema": schema, "data": data}).to_string();
    assert_eq!(
        iglu::validate_post_body(&body(iglu::PAYLOAD_DATA, json!([event]))),
        Ok(())
    );
    let older = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-3";
    assert!(iglu::validate_post_body(&body(older, json!([event]))).is_err());
    assert!(iglu::validate_post_body(&body(iglu::PAYLOAD_DATA, json!([]))).is_err());
    let number = json!({"e": "pv", "p": "srv", "tv": TV, "cd": 24});
    assert!(iglu::validate_post_body(&body(iglu::PAYLOAD_DATA, json!([number]))).is_err());
    assert!(iglu::validate_post_body("not json").is_err());
}
