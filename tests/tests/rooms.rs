//! End-to-end tests: rooms (being written).
