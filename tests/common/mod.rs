//! Helpers shared by the integration tests: the test collector, the Iglu schema validator and
//! emitter shortcuts.
// Each test binary uses a part of these helpers; the rest would warn as dead code.
#![allow(dead_code)]
// Helpers are `pub` for the test files, inside a test crate that exports nothing.
#![allow(unreachable_pub)]

pub mod collector;
pub mod iglu;
pub mod support;
