//! Typed errors: one type per operation.

/// An event or one of its parts was built from invalid input.
///
/// Returned by the event constructors and setters that validate their input, by
/// [`Subject`](crate::Subject) setters and by [`SelfDescribingJson::new`](crate::SelfDescribingJson::new).
/// Nothing is tracked when an event cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// A required text field was empty.
    #[error("{field} must not be empty")]
    EmptyField {
        /// The name of the field, as the constructor calls it.
        field: &'static str,
    },
    /// A platform code outside `pc tv mob cnsl iot web srv app`.
    #[error("invalid platform `{0}`: expected one of pc, tv, mob, cnsl, iot, web, srv, app")]
    InvalidPlatform(String),
    /// A screen resolution or viewport with a zero width or height.
    #[error("{field} width and height must be greater than 0")]
    ZeroDimension {
        /// `screen_resolution` or `viewport`.
        field: &'static str,
    },
    /// A form element node name outside `INPUT`, `TEXTAREA`, `SELECT`.
    #[error("invalid form element node name `{0}`: expected INPUT, TEXTAREA or SELECT")]
    InvalidNodeName(String),
    /// A form element type outside the HTML input types.
    #[error("invalid form element type `{0}`")]
    InvalidInputType(String),
    /// Self-describing data that is not a JSON object.
    #[error("the data of `{schema}` must be a JSON object")]
    NotAnObject {
        /// The schema URI of the offending self-describing JSON.
        schema: String,
    },
    /// A schema URI that is not `iglu:vendor/name/format/version`.
    #[error("invalid schema URI `{0}`: expected iglu:vendor/name/format/M-R-A")]
    InvalidSchemaUri(String),
    /// A field that must hold a UUID does not.
    #[error("{field} must be a UUID, got `{value}`")]
    InvalidUuid {
        /// The name of the field.
        field: &'static str,
        /// The rejected text.
        value: String,
    },
    /// A number that is NaN or infinite.
    #[error("{field} must be a finite number")]
    NonFiniteNumber {
        /// The name of the field.
        field: &'static str,
    },
    /// A count above what the event's schema allows.
    #[error("{field} must be at most {max}")]
    OutOfRange {
        /// The name of the field.
        field: &'static str,
        /// The largest value the schema allows.
        max: u64,
    },
}

/// A tracker or emitter could not be built from its settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The tracker namespace was empty.
    #[error("the tracker namespace must not be empty")]
    EmptyNamespace,
}
