//! The subject of events: who and where (user id, IP, user agent, platform, …).
//!
//! **No I/O, no actix.** A tracker has a subject applied to every event; an event may carry
//! its own, which wins on shared fields (the merge rule of the Snowplow trackers).

use std::fmt;
use std::str::FromStr;

use crate::error::{EventError, FirstError};
use crate::payload::Payload;

/// The platform an event comes from (`p`).
///
/// A server-side tracker defaults to [`Platform::Server`] (`srv`).
///
/// # Examples
///
/// ```
/// use snowplow_actix::Platform;
///
/// assert_eq!("mob".parse::<Platform>(), Ok(Platform::Mobile));
/// assert!("desktop".parse::<Platform>().is_err());
/// assert_eq!(Platform::Server.as_str(), "srv");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    /// `pc`: desktop, laptop or netbook.
    Pc,
    /// `tv`: connected TV.
    Tv,
    /// `mob`: mobile or tablet.
    Mobile,
    /// `cnsl`: games console.
    Console,
    /// `iot`: internet of things.
    Iot,
    /// `web`: web (including mobile web).
    Web,
    /// `srv`: server-side app (the default here).
    #[default]
    Server,
    /// `app`: general app.
    App,
}

impl Platform {
    /// The tracker-protocol code.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pc => "pc",
            Self::Tv => "tv",
            Self::Mobile => "mob",
            Self::Console => "cnsl",
            Self::Iot => "iot",
            Self::Web => "web",
            Self::Server => "srv",
            Self::App => "app",
        }
    }
}

impl FromStr for Platform {
    type Err = EventError;

    fn from_str(code: &str) -> Result<Self, Self::Err> {
        Ok(match code {
            "pc" => Self::Pc,
            "tv" => Self::Tv,
            "mob" => Self::Mobile,
            "cnsl" => Self::Console,
            "iot" => Self::Iot,
            "web" => Self::Web,
            "srv" => Self::Server,
            "app" => Self::App,
            other => return Err(EventError::InvalidPlatform(other.to_owned())),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who and where an event is about: the tracker-protocol subject fields.
///
/// Every setter of the Snowplow Python tracker's `Subject`, chainable; the ones that
/// validate return a `Result`. Fields keep the order their setters were first called in
/// (it is the order of the query string of a GET request).
///
/// # Merge rule
///
/// The tracker's subject applies to every event. An event's own subject is merged over
/// it: a field set in both takes the event's value (at the tracker subject's position);
/// fields only the event subject has come after.
///
/// # Examples
///
/// ```
/// use snowplow_actix::{Platform, Subject};
///
/// let subject = Subject::new()
///     .user_id("user-42")
///     .screen_resolution(1920, 1080)
///     .platform(Platform::Web)
///     .ip_address("203.0.113.9");
/// assert_eq!(subject.get("res"), Some("1920x1080"));
/// assert!(Subject::new().viewport(0, 600).error().is_some());
/// # Ok::<(), snowplow_actix::EventError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subject {
    fields: Payload,
    /// The first invalid value a setter was given.
    error: FirstError,
}

impl Subject {
    /// An empty subject.
    pub fn new() -> Self {
        Self::default()
    }

    fn with(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.fields.add(key, &value.into());
        self
    }

    /// `p`: the platform.
    pub fn platform(self, platform: Platform) -> Self {
        self.with("p", platform.as_str())
    }

    /// `uid`: the business user id.
    pub fn user_id(self, user_id: impl Into<String>) -> Self {
        self.with("uid", user_id)
    }

    /// `res`: the screen resolution, `"{width}x{height}"`. A side of 0
    /// ([`EventError::ZeroDimension`]) is kept and reported where the subject is used: by
    /// `track` for an event's subject, by `build` for a tracker's (see [`EventError`]).
    pub fn screen_resolution(self, width: u32, height: u32) -> Self {
        self.dimensions("res", "screen_resolution", width, height)
    }

    /// `vp`: the viewport, `"{width}x{height}"`. A side of 0 ([`EventError::ZeroDimension`])
    /// is kept and reported where the subject is used, as for
    /// [`screen_resolution`](Self::screen_resolution).
    pub fn viewport(self, width: u32, height: u32) -> Self {
        self.dimensions("vp", "viewport", width, height)
    }

    fn dimensions(
        mut self,
        key: &'static str,
        field: &'static str,
        width: u32,
        height: u32,
    ) -> Self {
        match self.error.keep(dimensions(field, width, height)) {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// The first invalid value a setter was given, if any.
    pub fn error(&self) -> Option<&EventError> {
        self.error.get()
    }

    /// `cd`: the colour depth.
    pub fn color_depth(mut self, depth: u32) -> Self {
        self.fields.add_display("cd", depth);
        self
    }

    /// `tz`: the time zone, e.g. `Europe/London`.
    pub fn timezone(self, timezone: impl Into<String>) -> Self {
        self.with("tz", timezone)
    }

    /// `lang`: the language, e.g. `en-GB`.
    pub fn lang(self, lang: impl Into<String>) -> Self {
        self.with("lang", lang)
    }

    /// `duid`: the domain user id (first-party cookie id).
    pub fn domain_user_id(self, domain_user_id: impl Into<String>) -> Self {
        self.with("duid", domain_user_id)
    }

    /// `sid`: the domain session id.
    pub fn domain_session_id(self, session_id: impl Into<String>) -> Self {
        self.with("sid", session_id)
    }

    /// `vid`: the domain session index.
    pub fn domain_session_index(mut self, index: u32) -> Self {
        self.fields.add_display("vid", index);
        self
    }

    /// `ip`: the IP address, overriding the one the collector sees.
    pub fn ip_address(self, ip: impl Into<String>) -> Self {
        self.with("ip", ip)
    }

    /// `ua`: the user agent, overriding the one the collector sees.
    pub fn useragent(self, useragent: impl Into<String>) -> Self {
        self.with("ua", useragent)
    }

    /// `tnuid`: the network user id, overriding the collector's cookie.
    pub fn network_user_id(self, network_user_id: impl Into<String>) -> Self {
        self.with("tnuid", network_user_id)
    }

    /// The value of a field by its tracker-protocol name (`uid`, `res`, …).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key)
    }

    /// The fields in order, by tracker-protocol name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> + '_ {
        self.fields.iter()
    }

    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// This subject merged over `base`: shared fields take this subject's values at
    /// `base`'s positions; fields only this subject has come after.
    pub fn merged_over(&self, base: &Subject) -> Subject {
        let mut fields = base.fields.clone();
        self.add_to(&mut fields);
        let mut error = base.error.clone();
        error.also(self.error().cloned());
        Subject { fields, error }
    }

    /// Adds the fields to `payload`, replacing same-named ones in place.
    pub(crate) fn add_to(&self, payload: &mut Payload) {
        for (key, value) in self.fields.iter() {
            payload.put(key, value);
        }
    }
}

fn dimensions(field: &'static str, width: u32, height: u32) -> Result<String, EventError> {
    if width == 0 || height == 0 {
        return Err(EventError::ZeroDimension { field });
    }
    Ok(format!("{width}x{height}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_code_round_trips() {
        for code in ["pc", "tv", "mob", "cnsl", "iot", "web", "srv", "app"] {
            assert_eq!(code.parse::<Platform>().unwrap().as_str(), code);
        }
        assert_eq!(
            "PC".parse::<Platform>(),
            Err(EventError::InvalidPlatform("PC".into()))
        );
    }

    #[test]
    fn zero_dimensions_are_rejected() {
        let subject = Subject::new().screen_resolution(0, 1).viewport(1, 0);
        assert_eq!(
            subject.error(),
            Some(&EventError::ZeroDimension {
                field: "screen_resolution"
            }),
            "the first invalid value is kept"
        );
        assert_eq!(subject.get("res"), None);
        assert_eq!(
            Subject::new().viewport(1, 0).error(),
            Some(&EventError::ZeroDimension { field: "viewport" })
        );
    }

    #[test]
    fn event_subject_wins_at_the_tracker_subject_position() {
        let tracker = Subject::new()
            .platform(Platform::Server)
            .user_id("tracker-user")
            .lang("en");
        let event = Subject::new().ip_address("1.2.3.4").user_id("event-user");
        let merged = event.merged_over(&tracker);
        let merged: Vec<_> = merged.iter().collect();
        assert_eq!(
            merged,
            [
                ("p", "srv"),
                ("uid", "event-user"),
                ("lang", "en"),
                ("ip", "1.2.3.4")
            ]
        );
    }
}
