//! The `roomcast` binary refuses a bad `ROOMCAST_SEND_QUEUE_BYTES` at start, naming the
//! setting (docs/protocol.md, limits): zero, a negative number, a unit it does not take.
//! The queue's behaviour itself is `tests/tests/slow_consumer.rs`'s.

mod cli_common;

use cli_common::*;

#[test]
fn a_bad_send_queue_bound_is_refused_at_start() {
    for bad in ["0", "-1", "1MiB", ""] {
        let addr = free_addr();
        let mut command = roomcast();
        command
            .env("ROOMCAST_DEV", "1")
            .env("ROOMCAST_SEND_QUEUE_BYTES", bad)
            .args(["--bind", &addr.to_string()]);
        let (status, stdout, stderr) = run_to_exit(command);
        assert!(
            !status.success(),
            "{bad:?}: started anyway\n{stdout}{stderr}"
        );
        let named = stderr.to_lowercase();
        assert!(
            named.contains("send_queue_bytes") || named.contains("send-queue-bytes"),
            "{bad:?}: the error does not name the setting:\n{stderr}"
        );
        assert!(http(addr, "/healthz", None).is_none(), "{bad:?}: port open");
    }
}
