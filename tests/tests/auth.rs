//! End-to-end tests: auth (being written).
