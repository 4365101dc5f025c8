//! Test collector (placeholder).
