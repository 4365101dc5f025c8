//! Placeholder until the payload bench lands.
fn main() {}
