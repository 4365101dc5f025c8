//! Page view, page ping, structured, self-describing and screen view events.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{finite, non_empty, single_payload_event, EventOptions};
use crate::error::EventError;
use crate::payload::Payload;
use crate::self_describing::{add_unstruct, SelfDescribingJson};

/// A page view (`e=pv`).
///
/// # Examples
///
/// ```
/// use snowplow_actix::PageView;
///
/// let view = PageView::new("https://shop.example/basket")?.title("Basket");
/// assert!(PageView::new("").is_err());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PageView {
    url: String,
    title: Option<String>,
    referrer: Option<String>,
    options: EventOptions,
}

impl PageView {
    /// A view of the page at `url` (`url`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `url` is empty.
    pub fn new(url: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            url: non_empty("page_url", url.into())?,
            title: None,
            referrer: None,
            options: EventOptions::default(),
        })
    }

    /// The page title (`page`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The referrer (`refr`).
    pub fn referrer(mut self, referrer: impl Into<String>) -> Self {
        self.referrer = Some(referrer.into());
        self
    }

    fn fields(&self, _base64: bool) -> Payload {
        let mut payload = Payload::for_building();
        payload.add("e", "pv");
        payload.add("url", &self.url);
        payload.add_opt("page", self.title.as_deref());
        payload.add_opt("refr", self.referrer.as_deref());
        payload
    }
}

/// A page ping (`e=pp`): the page is still open, with how far it was scrolled.
///
/// # Examples
///
/// ```
/// use snowplow_actix::PagePing;
///
/// let ping = PagePing::new("https://shop.example/")?.offsets(0, 1024, 0, 3000);
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PagePing {
    url: String,
    title: Option<String>,
    referrer: Option<String>,
    offsets: Option<[i64; 4]>,
    options: EventOptions,
}

impl PagePing {
    /// A ping of the page at `url` (`url`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `url` is empty.
    pub fn new(url: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            url: non_empty("page_url", url.into())?,
            title: None,
            referrer: None,
            offsets: None,
            options: EventOptions::default(),
        })
    }

    /// The page title (`page`).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// The referrer (`refr`).
    pub fn referrer(mut self, referrer: impl Into<String>) -> Self {
        self.referrer = Some(referrer.into());
        self
    }

    /// The scroll offsets: `pp_mix`, `pp_max`, `pp_miy`, `pp_may`.
    pub fn offsets(mut self, min_x: i64, max_x: i64, min_y: i64, max_y: i64) -> Self {
        self.offsets = Some([min_x, max_x, min_y, max_y]);
        self
    }

    fn fields(&self, _base64: bool) -> Payload {
        let mut payload = Payload::for_building();
        payload.add("e", "pp");
        payload.add("url", &self.url);
        payload.add_opt("page", self.title.as_deref());
        payload.add_opt("refr", self.referrer.as_deref());
        if let Some(offsets) = self.offsets {
            for (key, value) in ["pp_mix", "pp_max", "pp_miy", "pp_may"]
                .into_iter()
                .zip(offsets)
            {
                payload.add_display(key, value);
            }
        }
        payload
    }
}

/// A structured event (`e=se`): category, action and optional label, property and value.
///
/// # Examples
///
/// ```
/// use snowplow_actix::{Event, Structured};
///
/// let event = Structured::new("shop", "add-to-basket")?.label("red shoes").value(2.5);
/// assert!(Structured::new("shop", "").is_err());
/// // An invalid optional value is kept, and `track` reports it (nothing is tracked).
/// assert!(Structured::new("shop", "buy")?.value(f64::NAN).options().error().is_some());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Structured {
    category: String,
    action: String,
    label: Option<String>,
    property: Option<String>,
    value: Option<f64>,
    options: EventOptions,
}

impl Structured {
    /// An event of `category` (`se_ca`) and `action` (`se_ac`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when either is empty.
    pub fn new(category: impl Into<String>, action: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            category: non_empty("category", category.into())?,
            action: non_empty("action", action.into())?,
            label: None,
            property: None,
            value: None,
            options: EventOptions::default(),
        })
    }

    /// The label (`se_la`).
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    /// The property (`se_pr`).
    pub fn property(mut self, property: impl Into<String>) -> Self {
        self.property = Some(property.into());
        self
    }

    /// The value (`se_va`). NaN or an infinity ([`EventError::NonFiniteNumber`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn value(mut self, value: f64) -> Self {
        self.value = self.options.keep(finite("value", value));
        self
    }

    fn fields(&self, _base64: bool) -> Payload {
        let mut payload = Payload::for_building();
        payload.add("e", "se");
        payload.add("se_ca", &self.category);
        payload.add("se_ac", &self.action);
        payload.add_opt("se_la", self.label.as_deref());
        payload.add_opt("se_pr", self.property.as_deref());
        if let Some(value) = self.value {
            payload.add_display("se_va", value);
        }
        payload
    }
}

/// A self-describing event (`e=ue`): any JSON described by an Iglu schema.
///
/// # Examples
///
/// ```
/// use serde_json::json;
/// use snowplow_actix::{SelfDescribing, SelfDescribingJson};
///
/// let event = SelfDescribing::new(SelfDescribingJson::new(
///     "iglu:com.acme/signup/jsonschema/1-0-0",
///     json!({"plan": "pro"}),
/// )?);
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SelfDescribing {
    event: SelfDescribingJson,
    options: EventOptions,
}

impl SelfDescribing {
    /// The event described by `event`.
    pub fn new(event: SelfDescribingJson) -> Self {
        Self {
            event,
            options: EventOptions::default(),
        }
    }

    /// The self-describing JSON of the event.
    pub fn json(&self) -> &SelfDescribingJson {
        &self.event
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut payload = Payload::for_building();
        payload.add("e", "ue");
        add_unstruct(&mut payload, &self.event, base64);
        payload
    }
}

/// The `e=ue` payload of an event of one of the crate's own schemas, whose data this crate
/// builds as an object.
pub(super) fn own_schema_payload(
    schema: &'static str,
    data: Map<String, Value>,
    base64: bool,
) -> Payload {
    let event = SelfDescribingJson::new(schema, Value::Object(data))
        .expect("the crate's schema URIs are valid and its data are objects");
    let mut payload = Payload::for_building();
    payload.add("e", "ue");
    add_unstruct(&mut payload, &event, base64);
    payload
}

/// Schema of [`ScreenView`].
pub const SCREEN_VIEW_SCHEMA: &str =
    "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0";

/// A screen view (`e=ue`, schema `com.snowplowanalytics.mobile/screen_view` 1-0-0).
///
/// # Examples
///
/// ```
/// use snowplow_actix::ScreenView;
///
/// let view = ScreenView::new("basket", "d3b07384-d9a0-4c9b-8f3e-1d2a3b4c5d6e")?.screen_type("feed");
/// assert!(ScreenView::new("", "d3b07384-d9a0-4c9b-8f3e-1d2a3b4c5d6e").is_err());
/// assert!(ScreenView::new("basket", "not-a-uuid").is_err());
/// let fresh = ScreenView::with_random_id("basket")?;
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenView {
    name: String,
    id: String,
    screen_type: Option<String>,
    previous_name: Option<String>,
    previous_id: Option<String>,
    previous_type: Option<String>,
    transition_type: Option<String>,
    options: EventOptions,
}

impl ScreenView {
    /// A view of the screen `name` with the screen view `id`, a UUID.
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `name` or `id` is empty, [`EventError::InvalidUuid`]
    /// when `id` is not a UUID (the schema's `format: uuid`).
    pub fn new(name: impl Into<String>, id: impl AsRef<str>) -> Result<Self, EventError> {
        Ok(Self {
            name: non_empty("name", name.into())?,
            id: uuid_field("id", id.as_ref())?,
            screen_type: None,
            previous_name: None,
            previous_id: None,
            previous_type: None,
            transition_type: None,
            options: EventOptions::default(),
        })
    }

    /// A view of the screen `name` with a new random UUID v4 as its id.
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `name` is empty.
    pub fn with_random_id(name: impl Into<String>) -> Result<Self, EventError> {
        Self::new(name, Uuid::new_v4().to_string())
    }

    /// The screen view id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The screen type (`type`), e.g. `feed` or `carousel`.
    pub fn screen_type(mut self, screen_type: impl Into<String>) -> Self {
        self.screen_type = Some(screen_type.into());
        self
    }

    /// The previous screen's name (`previousName`).
    pub fn previous_name(mut self, name: impl Into<String>) -> Self {
        self.previous_name = Some(name.into());
        self
    }

    /// The previous screen view's id (`previousId`), a UUID. An id that is not a UUID
    /// ([`EventError::InvalidUuid`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn previous_id(mut self, id: impl AsRef<str>) -> Self {
        self.previous_id = self.options.keep(uuid_field("previous_id", id.as_ref()));
        self
    }

    /// The previous screen's type (`previousType`).
    pub fn previous_type(mut self, screen_type: impl Into<String>) -> Self {
        self.previous_type = Some(screen_type.into());
        self
    }

    /// The type of transition that led to this screen (`transitionType`).
    pub fn transition_type(mut self, transition: impl Into<String>) -> Self {
        self.transition_type = Some(transition.into());
        self
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut data = Map::new();
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                data.insert(key.to_owned(), Value::String(value.clone()));
            }
        };
        put("id", &Some(self.id.clone()));
        put("name", &Some(self.name.clone()));
        put("type", &self.screen_type);
        put("previousName", &self.previous_name);
        put("previousId", &self.previous_id);
        put("previousType", &self.previous_type);
        put("transitionType", &self.transition_type);
        own_schema_payload(SCREEN_VIEW_SCHEMA, data, base64)
    }
}

fn uuid_field(field: &'static str, value: &str) -> Result<String, EventError> {
    if value.is_empty() {
        return Err(EventError::EmptyField { field });
    }
    Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| EventError::InvalidUuid {
            field,
            value: value.to_owned(),
        })
}

single_payload_event!(PageView, PagePing, Structured, SelfDescribing, ScreenView);
