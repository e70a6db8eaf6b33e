//! End-to-end tests: api (being written).
