//! Helpers shared by the integration tests: the test collector, the Iglu schema validator and
//! emitter shortcuts.

pub(crate) mod collector;
pub(crate) mod iglu;
pub(crate) mod logs;
pub(crate) mod support;
