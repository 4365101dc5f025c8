//! Iglu schema validation (placeholder).
