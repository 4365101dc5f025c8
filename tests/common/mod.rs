//! Helpers shared by the integration tests: the Iglu schema validator and the test collector.
// Each test binary uses a part of these helpers; the rest would warn as dead code.
#![allow(dead_code)]

pub mod collector;
pub mod iglu;
