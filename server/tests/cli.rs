//! Tests of the roomcast binary as a process (being written).
