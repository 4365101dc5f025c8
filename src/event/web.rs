//! Self-describing helpers of the web: link click, form change and submit, site search.

use serde_json::{Map, Value};

use super::basic::own_schema_payload;
use super::{non_empty, single_payload_event, EventOptions};
use crate::error::{EventError, FirstError};
use crate::payload::Payload;

/// Schema of [`LinkClick`].
pub const LINK_CLICK_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1";
/// Schema of [`FormChange`].
pub const CHANGE_FORM_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/change_form/jsonschema/1-0-0";
/// Schema of [`FormSubmit`].
pub const SUBMIT_FORM_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/submit_form/jsonschema/1-0-0";
/// Schema of [`SiteSearch`].
pub const SITE_SEARCH_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/site_search/jsonschema/1-0-0";

/// The form element node names the form schemas allow.
const NODE_NAMES: [&str; 3] = ["INPUT", "TEXTAREA", "SELECT"];
/// The HTML input types the form schemas allow.
const INPUT_TYPES: [&str; 23] = [
    "button",
    "checkbox",
    "color",
    "date",
    "datetime",
    "datetime-local",
    "email",
    "file",
    "hidden",
    "image",
    "month",
    "number",
    "password",
    "radio",
    "range",
    "reset",
    "search",
    "submit",
    "tel",
    "text",
    "time",
    "url",
    "week",
];

/// `maxLength` of ids and classes in the form schemas.
const MAX_ID_LEN: usize = 4_096;
/// `maxLength` of element names and values in the form schemas.
const MAX_VALUE_LEN: usize = 65_535;

/// Checks a text against a schema's `maxLength` (counted in characters, as JSON Schema does).
fn max_len(field: &'static str, value: String, max: usize) -> Result<String, EventError> {
    if value.chars().count() > max {
        Err(EventError::TooLong { field, max })
    } else {
        Ok(value)
    }
}

fn max_len_opt(
    field: &'static str,
    value: Option<&str>,
    max: usize,
) -> Result<Option<String>, EventError> {
    value.map(|v| max_len(field, v.to_owned(), max)).transpose()
}

fn classes(
    field: &'static str,
    classes: impl IntoIterator<Item = impl Into<String>>,
) -> Result<Vec<String>, EventError> {
    classes
        .into_iter()
        .map(|class| max_len(field, class.into(), MAX_ID_LEN))
        .collect()
}

fn node_name(name: &str) -> Result<&'static str, EventError> {
    NODE_NAMES
        .into_iter()
        .find(|known| *known == name)
        .ok_or_else(|| EventError::InvalidNodeName(name.to_owned()))
}

/// Input types are matched without regard to case and sent in lower case.
fn input_type(input_type: &str) -> Result<&'static str, EventError> {
    INPUT_TYPES
        .into_iter()
        .find(|known| known.eq_ignore_ascii_case(input_type))
        .ok_or_else(|| EventError::InvalidInputType(input_type.to_owned()))
}

fn strings(values: &[String]) -> Value {
    Value::Array(values.iter().cloned().map(Value::String).collect())
}

/// A click on a link (`e=ue`, schema `link_click` 1-0-1).
///
/// # Examples
///
/// ```
/// use snowplow_actix::LinkClick;
///
/// let click = LinkClick::new("https://example.com/offer")?.element_id("cta");
/// assert!(LinkClick::new("").is_err());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinkClick {
    target_url: String,
    element_id: Option<String>,
    element_classes: Vec<String>,
    element_target: Option<String>,
    element_content: Option<String>,
    options: EventOptions,
}

impl LinkClick {
    /// A click on a link to `target_url` (`targetUrl`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `target_url` is empty.
    pub fn new(target_url: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            target_url: non_empty("target_url", target_url.into())?,
            element_id: None,
            element_classes: Vec::new(),
            element_target: None,
            element_content: None,
            options: EventOptions::default(),
        })
    }

    /// The link element's id (`elementId`).
    pub fn element_id(mut self, id: impl Into<String>) -> Self {
        self.element_id = Some(id.into());
        self
    }

    /// The link element's classes (`elementClasses`).
    pub fn element_classes(mut self, classes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.element_classes = classes.into_iter().map(Into::into).collect();
        self
    }

    /// The link's target attribute (`elementTarget`).
    pub fn element_target(mut self, target: impl Into<String>) -> Self {
        self.element_target = Some(target.into());
        self
    }

    /// The link's text (`elementContent`).
    pub fn element_content(mut self, content: impl Into<String>) -> Self {
        self.element_content = Some(content.into());
        self
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut data = Map::new();
        data.insert("targetUrl".into(), Value::String(self.target_url.clone()));
        for (key, value) in [
            ("elementId", &self.element_id),
            ("elementTarget", &self.element_target),
            ("elementContent", &self.element_content),
        ] {
            if let Some(value) = value {
                data.insert(key.into(), Value::String(value.clone()));
            }
        }
        if !self.element_classes.is_empty() {
            data.insert("elementClasses".into(), strings(&self.element_classes));
        }
        own_schema_payload(LINK_CLICK_SCHEMA, data, base64)
    }
}

/// A change of a form element's value (`e=ue`, schema `change_form` 1-0-0).
///
/// `elementId` and `value` are always sent, `value` as `null` when absent.
///
/// # Examples
///
/// ```
/// use snowplow_actix::FormChange;
///
/// let change = FormChange::new("signup", "email", "INPUT", Some("a@b.c"))?.input_type("email");
/// assert!(FormChange::new("signup", "email", "DIV", None).is_err());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FormChange {
    form_id: String,
    element_id: String,
    node_name: &'static str,
    value: Option<String>,
    input_type: Option<&'static str>,
    element_classes: Vec<String>,
    options: EventOptions,
}

impl FormChange {
    /// Element `element_id` of form `form_id`, a `node_name` (`INPUT`, `TEXTAREA` or
    /// `SELECT`), now holding `value`.
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `form_id` is empty, [`EventError::InvalidNodeName`]
    /// for another node name, [`EventError::TooLong`] for ids over 4 096 characters or a
    /// value over 65 535 (the schema's limits).
    pub fn new(
        form_id: impl Into<String>,
        element_id: impl Into<String>,
        node_name: &str,
        value: Option<&str>,
    ) -> Result<Self, EventError> {
        Ok(Self {
            form_id: max_len("form_id", non_empty("form_id", form_id.into())?, MAX_ID_LEN)?,
            element_id: max_len("element_id", element_id.into(), MAX_ID_LEN)?,
            node_name: self::node_name(node_name)?,
            value: max_len_opt("value", value, MAX_VALUE_LEN)?,
            input_type: None,
            element_classes: Vec::new(),
            options: EventOptions::default(),
        })
    }

    /// The element's input type (`type`), one of the HTML input types. Another type
    /// ([`EventError::InvalidInputType`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn input_type(mut self, input_type: impl AsRef<str>) -> Self {
        self.input_type = self.options.keep(self::input_type(input_type.as_ref()));
        self
    }

    /// The element's classes (`elementClasses`). A class over 4 096 characters
    /// ([`EventError::TooLong`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn element_classes(mut self, classes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        if let Some(classes) = self.options.keep(self::classes("element_classes", classes)) {
            self.element_classes = classes;
        }
        self
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut data = Map::new();
        data.insert("formId".into(), Value::String(self.form_id.clone()));
        data.insert("elementId".into(), Value::String(self.element_id.clone()));
        data.insert("nodeName".into(), Value::String(self.node_name.into()));
        data.insert(
            "value".into(),
            self.value.clone().map_or(Value::Null, Value::String),
        );
        if let Some(input_type) = self.input_type {
            data.insert("type".into(), Value::String(input_type.into()));
        }
        if !self.element_classes.is_empty() {
            data.insert("elementClasses".into(), strings(&self.element_classes));
        }
        own_schema_payload(CHANGE_FORM_SCHEMA, data, base64)
    }
}

/// One element of a submitted form, for [`FormSubmit`].
#[derive(Debug, Clone, PartialEq)]
pub struct FormElement {
    name: String,
    value: Option<String>,
    node_name: &'static str,
    input_type: Option<&'static str>,
    /// The first invalid value a setter was given.
    error: FirstError,
}

impl FormElement {
    /// The element `name`, a `node_name` (`INPUT`, `TEXTAREA` or `SELECT`), holding `value`.
    ///
    /// # Errors
    ///
    /// [`EventError::InvalidNodeName`] for another node name, [`EventError::TooLong`] for a
    /// name or value over 65 535 characters (the schema's limits).
    pub fn new(
        name: impl Into<String>,
        value: Option<&str>,
        node_name: &str,
    ) -> Result<Self, EventError> {
        Ok(Self {
            name: max_len("name", name.into(), MAX_VALUE_LEN)?,
            value: max_len_opt("value", value, MAX_VALUE_LEN)?,
            node_name: self::node_name(node_name)?,
            input_type: None,
            error: FirstError::default(),
        })
    }

    /// The element's input type (`type`), one of the HTML input types. Another type
    /// ([`EventError::InvalidInputType`]) is kept and reported when the form submission
    /// holding the element is tracked (see [`EventError`]).
    pub fn input_type(mut self, input_type: impl AsRef<str>) -> Self {
        self.input_type = self.error.keep(self::input_type(input_type.as_ref()));
        self
    }

    fn to_json(&self) -> Value {
        let mut element = Map::new();
        element.insert("name".into(), Value::String(self.name.clone()));
        element.insert(
            "value".into(),
            self.value.clone().map_or(Value::Null, Value::String),
        );
        element.insert("nodeName".into(), Value::String(self.node_name.into()));
        if let Some(input_type) = self.input_type {
            element.insert("type".into(), Value::String(input_type.into()));
        }
        Value::Object(element)
    }
}

/// A submitted form (`e=ue`, schema `submit_form` 1-0-0).
///
/// # Examples
///
/// ```
/// use snowplow_actix::{FormElement, FormSubmit};
///
/// let submit = FormSubmit::new("signup")?
///     .element(FormElement::new("email", Some("a@b.c"), "INPUT")?.input_type("email"));
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct FormSubmit {
    form_id: String,
    form_classes: Vec<String>,
    elements: Vec<FormElement>,
    options: EventOptions,
}

impl FormSubmit {
    /// A submission of form `form_id` (`formId`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `form_id` is empty, [`EventError::TooLong`] over
    /// 4 096 characters.
    pub fn new(form_id: impl Into<String>) -> Result<Self, EventError> {
        Ok(Self {
            form_id: max_len("form_id", non_empty("form_id", form_id.into())?, MAX_ID_LEN)?,
            form_classes: Vec::new(),
            elements: Vec::new(),
            options: EventOptions::default(),
        })
    }

    /// The form's classes (`formClasses`). A class over 4 096 characters
    /// ([`EventError::TooLong`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn form_classes(mut self, classes: impl IntoIterator<Item = impl Into<String>>) -> Self {
        if let Some(classes) = self.options.keep(self::classes("form_classes", classes)) {
            self.form_classes = classes;
        }
        self
    }

    /// Adds an element (`elements`, sent only when there is at least one); an invalid value
    /// it was given is this event's.
    pub fn element(mut self, element: FormElement) -> Self {
        self.options.keep(element.error.check());
        self.elements.push(element);
        self
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut data = Map::new();
        data.insert("formId".into(), Value::String(self.form_id.clone()));
        if !self.form_classes.is_empty() {
            data.insert("formClasses".into(), strings(&self.form_classes));
        }
        if !self.elements.is_empty() {
            let elements = self.elements.iter().map(FormElement::to_json).collect();
            data.insert("elements".into(), Value::Array(elements));
        }
        own_schema_payload(SUBMIT_FORM_SCHEMA, data, base64)
    }
}

/// A search on the site (`e=ue`, schema `site_search` 1-0-0).
///
/// # Examples
///
/// ```
/// use snowplow_actix::SiteSearch;
///
/// let search = SiteSearch::new(["red", "shoes"])?.filter("size", "42").total_results(17);
/// assert!(SiteSearch::new(Vec::<String>::new()).is_err());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSearch {
    terms: Vec<String>,
    filters: Map<String, Value>,
    total_results: Option<u32>,
    page_results: Option<u32>,
    options: EventOptions,
}

/// The largest result count the `site_search` schema allows.
const MAX_RESULTS: u32 = i32::MAX as u32;

impl SiteSearch {
    /// A search for `terms` (`terms`, at least one).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when there is no term.
    pub fn new(terms: impl IntoIterator<Item = impl Into<String>>) -> Result<Self, EventError> {
        let terms: Vec<String> = terms.into_iter().map(Into::into).collect();
        if terms.is_empty() {
            return Err(EventError::EmptyField { field: "terms" });
        }
        Ok(Self {
            terms,
            filters: Map::new(),
            total_results: None,
            page_results: None,
            options: EventOptions::default(),
        })
    }

    /// Adds a text filter (`filters`).
    pub fn filter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.filters
            .insert(name.into(), Value::String(value.into()));
        self
    }

    /// Adds a yes/no filter (`filters`).
    pub fn filter_flag(mut self, name: impl Into<String>, value: bool) -> Self {
        self.filters.insert(name.into(), Value::Bool(value));
        self
    }

    /// The number of results (`totalResults`). A count above 2 147 483 647, the schema's
    /// maximum ([`EventError::OutOfRange`]), is kept and reported when the event is tracked (see [`EventError`]).
    pub fn total_results(mut self, count: u32) -> Self {
        self.total_results = self.options.keep(results("total_results", count));
        self
    }

    /// The number of results on the page shown (`pageResults`). A count above
    /// 2 147 483 647 ([`EventError::OutOfRange`]) is kept and reported when the event is tracked (see [`EventError`]).
    pub fn page_results(mut self, count: u32) -> Self {
        self.page_results = self.options.keep(results("page_results", count));
        self
    }

    fn fields(&self, base64: bool) -> Payload {
        let mut data = Map::new();
        data.insert("terms".into(), strings(&self.terms));
        if !self.filters.is_empty() {
            data.insert("filters".into(), Value::Object(self.filters.clone()));
        }
        if let Some(count) = self.total_results {
            data.insert("totalResults".into(), Value::from(count));
        }
        if let Some(count) = self.page_results {
            data.insert("pageResults".into(), Value::from(count));
        }
        own_schema_payload(SITE_SEARCH_SCHEMA, data, base64)
    }
}

fn results(field: &'static str, count: u32) -> Result<u32, EventError> {
    if count > MAX_RESULTS {
        return Err(EventError::OutOfRange {
            field,
            max: u64::from(MAX_RESULTS),
        });
    }
    Ok(count)
}

single_payload_event!(LinkClick, FormChange, FormSubmit, SiteSearch);
