//! Ecommerce: transactions with their items, and add to / remove from cart.

use serde_json::{Map, Value};

use super::basic::own_schema_payload;
use super::{finite, non_empty, sealed, single_payload_event, Event, EventOptions};
use crate::error::EventError;
use crate::payload::Payload;
use crate::subject::Subject;

/// An ecommerce transaction (`e=tr`), tracked together with one `e=ti` event per item.
///
/// As the Snowplow trackers do, tracking a transaction sends the `tr` event first, then one
/// `ti` event per item in order; each item carries the transaction's order id and currency,
/// its subject and its context entities. Items always carry `ttm` (the transaction's true
/// timestamp, or the time of tracking); the `tr` event carries `ttm` only when a true
/// timestamp was set.
///
/// # Examples
///
/// ```
/// use snowplow_actix::{Transaction, TransactionItem};
///
/// let order = Transaction::new("order-1", 25.0)?
///     .currency("EUR")
///     .item(TransactionItem::new("sku-1", 12.5, 2)?.name("Red shoes"));
/// assert_eq!(order.items().len(), 1);
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction {
    order_id: String,
    total_value: f64,
    affiliation: Option<String>,
    tax_value: Option<f64>,
    shipping: Option<f64>,
    city: Option<String>,
    state: Option<String>,
    country: Option<String>,
    currency: Option<String>,
    items: Vec<TransactionItem>,
    options: EventOptions,
}

impl Transaction {
    /// A transaction `order_id` (`tr_id`) of `total_value` (`tr_tt`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `order_id` is empty, [`EventError::NonFiniteNumber`]
    /// when `total_value` is NaN or infinite.
    pub fn new(order_id: impl Into<String>, total_value: f64) -> Result<Self, EventError> {
        Ok(Self {
            order_id: non_empty("order_id", order_id.into())?,
            total_value: finite("total_value", total_value)?,
            affiliation: None,
            tax_value: None,
            shipping: None,
            city: None,
            state: None,
            country: None,
            currency: None,
            items: Vec::new(),
            options: EventOptions::default(),
        })
    }

    /// The affiliation (`tr_af`).
    pub fn affiliation(mut self, affiliation: impl Into<String>) -> Self {
        self.affiliation = Some(affiliation.into());
        self
    }

    /// The tax value (`tr_tx`). NaN or an infinity ([`EventError::NonFiniteNumber`])
    /// is kept and reported when the event is tracked (see [`EventError`]).
    pub fn tax_value(mut self, tax: f64) -> Self {
        self.tax_value = self.options.keep(finite("tax_value", tax));
        self
    }

    /// The shipping cost (`tr_sh`). NaN or an infinity ([`EventError::NonFiniteNumber`])
    /// is kept and reported when the event is tracked (see [`EventError`]).
    pub fn shipping(mut self, shipping: f64) -> Self {
        self.shipping = self.options.keep(finite("shipping", shipping));
        self
    }

    /// The delivery city (`tr_ci`).
    pub fn city(mut self, city: impl Into<String>) -> Self {
        self.city = Some(city.into());
        self
    }

    /// The delivery state (`tr_st`).
    pub fn state(mut self, state: impl Into<String>) -> Self {
        self.state = Some(state.into());
        self
    }

    /// The delivery country (`tr_co`).
    pub fn country(mut self, country: impl Into<String>) -> Self {
        self.country = Some(country.into());
        self
    }

    /// The currency (`tr_cu`, and `ti_cu` of every item).
    pub fn currency(mut self, currency: impl Into<String>) -> Self {
        self.currency = Some(currency.into());
        self
    }

    /// Adds an item, tracked as its own `ti` event after the transaction.
    pub fn item(mut self, item: TransactionItem) -> Self {
        self.items.push(item);
        self
    }

    /// The items, in tracking order.
    pub fn items(&self) -> &[TransactionItem] {
        &self.items
    }
}

impl Event for Transaction {
    fn options(&self) -> &EventOptions {
        &self.options
    }
}

impl sealed::Build for Transaction {
    fn options_mut(&mut self) -> &mut EventOptions {
        &mut self.options
    }

    fn build(self, base64: bool, now_ms: u64, emit: &mut dyn FnMut(Payload, Option<&Subject>)) {
        let subject = self.options.subject.as_ref();
        let mut tr = Payload::for_building();
        tr.add("e", "tr");
        tr.add("tr_id", &self.order_id);
        tr.add_display("tr_tt", self.total_value);
        tr.add_opt("tr_af", self.affiliation.as_deref());
        if let Some(tax) = self.tax_value {
            tr.add_display("tr_tx", tax);
        }
        if let Some(shipping) = self.shipping {
            tr.add_display("tr_sh", shipping);
        }
        tr.add_opt("tr_ci", self.city.as_deref());
        tr.add_opt("tr_st", self.state.as_deref());
        tr.add_opt("tr_co", self.country.as_deref());
        tr.add_opt("tr_cu", self.currency.as_deref());
        self.options.complete(&mut tr, base64, None);
        emit(tr, subject);

        for item in &self.items {
            let mut ti = Payload::for_building();
            ti.add("e", "ti");
            ti.add("ti_id", &self.order_id);
            ti.add("ti_sk", &item.sku);
            ti.add_opt("ti_nm", item.name.as_deref());
            ti.add_opt("ti_ca", item.category.as_deref());
            ti.add_display("ti_pr", item.price);
            ti.add_display("ti_qu", item.quantity);
            ti.add_opt("ti_cu", self.currency.as_deref());
            self.options.complete(&mut ti, base64, Some(now_ms));
            emit(ti, subject);
        }
    }
}

/// One line of a [`Transaction`] (`e=ti`).
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionItem {
    sku: String,
    price: f64,
    quantity: i64,
    name: Option<String>,
    category: Option<String>,
}

impl TransactionItem {
    /// `quantity` of `sku` (`ti_sk`) at `price` (`ti_pr`) each (`ti_qu`).
    ///
    /// # Errors
    ///
    /// [`EventError::EmptyField`] when `sku` is empty, [`EventError::NonFiniteNumber`] when
    /// `price` is NaN or infinite.
    pub fn new(sku: impl Into<String>, price: f64, quantity: i64) -> Result<Self, EventError> {
        Ok(Self {
            sku: non_empty("sku", sku.into())?,
            price: finite("price", price)?,
            quantity,
            name: None,
            category: None,
        })
    }

    /// The product name (`ti_nm`).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The product category (`ti_ca`).
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.category = Some(category.into());
        self
    }
}

/// Schema of [`AddToCart`].
pub const ADD_TO_CART_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/add_to_cart/jsonschema/1-0-0";
/// Schema of [`RemoveFromCart`].
pub const REMOVE_FROM_CART_SCHEMA: &str =
    "iglu:com.snowplowanalytics.snowplow/remove_from_cart/jsonschema/1-0-0";

/// The fields add-to-cart and remove-from-cart share.
#[derive(Debug, Clone, PartialEq)]
struct CartChange {
    sku: String,
    quantity: i64,
    name: Option<String>,
    category: Option<String>,
    unit_price: Option<f64>,
    currency: Option<String>,
}

impl CartChange {
    fn new(sku: String, quantity: i64) -> Result<Self, EventError> {
        Ok(Self {
            sku: non_empty("sku", sku)?,
            quantity,
            name: None,
            category: None,
            unit_price: None,
            currency: None,
        })
    }

    fn payload(&self, schema: &'static str, base64: bool) -> Payload {
        let mut data = Map::new();
        data.insert("sku".into(), Value::String(self.sku.clone()));
        data.insert("quantity".into(), Value::from(self.quantity));
        let mut put = |key: &str, value: &Option<String>| {
            if let Some(value) = value {
                data.insert(key.to_owned(), Value::String(value.clone()));
            }
        };
        put("name", &self.name);
        put("category", &self.category);
        put("currency", &self.currency);
        if let Some(price) = self.unit_price {
            data.insert("unitPrice".into(), Value::from(price));
        }
        own_schema_payload(schema, data, base64)
    }
}

macro_rules! cart_event {
    ($(#[$doc:meta])* $ty:ident, $schema:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $ty {
            change: CartChange,
            options: EventOptions,
        }

        impl $ty {
            /// `quantity` of the product `sku`.
            ///
            /// # Errors
            ///
            /// [`EventError::EmptyField`] when `sku` is empty.
            pub fn new(sku: impl Into<String>, quantity: i64) -> Result<Self, EventError> {
                Ok(Self {
                    change: CartChange::new(sku.into(), quantity)?,
                    options: EventOptions::default(),
                })
            }

            /// The product name (`name`).
            pub fn name(mut self, name: impl Into<String>) -> Self {
                self.change.name = Some(name.into());
                self
            }

            /// The product category (`category`).
            pub fn category(mut self, category: impl Into<String>) -> Self {
                self.change.category = Some(category.into());
                self
            }

            /// The price of one unit (`unitPrice`). NaN or an infinity
            /// ([`EventError::NonFiniteNumber`]) is kept and reported when the event is tracked (see [`EventError`]).
            pub fn unit_price(mut self, price: f64) -> Self {
                self.change.unit_price = self.options.keep(finite("unit_price", price));
                self
            }

            /// The currency (`currency`).
            pub fn currency(mut self, currency: impl Into<String>) -> Self {
                self.change.currency = Some(currency.into());
                self
            }

            fn fields(&self, base64: bool) -> Payload {
                self.change.payload($schema, base64)
            }
        }

        single_payload_event!($ty);
    };
}

cart_event!(
    /// A product added to the cart (`e=ue`, schema `add_to_cart` 1-0-0).
    ///
    /// # Examples
    ///
    /// ```
    /// use snowplow_actix::AddToCart;
    ///
    /// let added = AddToCart::new("sku-1", 2)?.unit_price(12.5).currency("EUR");
    /// # Ok::<(), snowplow_actix::EventError>(())
    /// ```
    AddToCart,
    ADD_TO_CART_SCHEMA
);
cart_event!(
    /// A product removed from the cart (`e=ue`, schema `remove_from_cart` 1-0-0).
    RemoveFromCart,
    REMOVE_FROM_CART_SCHEMA
);
