//! The load generator itself, in a small run: benchmarks are not tests, but the
//! instrument must stay able to measure. Five subscribers, twenty messages at a modest
//! rate against a real server; its JSON must account for every delivery, with nothing
//! lost, duplicated or out of order. No figure of speed is asserted.

use std::process::Command;

use roomcast_server::Settings;
use roomcast_tests::TestServer;
use serde_json::Value;

const SUBSCRIBERS: u64 = 5;
const MESSAGES: u64 = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_run_accounts_for_every_delivery() {
    let server = TestServer::with(Settings {
        // The publisher sends 20 chats at 50/s: inside the default limit, but the limit is
        // not what this test is about.
        rate_limit_per_sec: Some(1_000),
        rate_limit_burst: Some(1_000),
        ..Settings::default()
    })
    .await;
    let url = server.ws_url();
    // The server runs in this process, so this process is the `--server-pid`: the CPU
    // and memory readings are exercised too.
    let pid = std::process::id().to_string();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(["--json", "--threads", "1", "--server-pid", &pid])
            .args(["fanout", "--target", "roomcast", "--url", &url])
            .args(["--subscribers", &SUBSCRIBERS.to_string()])
            .args(["--messages", &MESSAGES.to_string(), "--rate", "50"])
            .args(["--settle-secs", "0.2", "--drain-secs", "10"])
            .output()
            .expect("run the loadgen")
    })
    .await
    .expect("loadgen task");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadgen failed: {stderr}");
    let stdout = String::from_utf8(output.stdout).expect("UTF-8 stdout");
    let report: Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    let field = |name: &str| {
        report[name]
            .as_u64()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    assert_eq!(field("sent"), MESSAGES, "{stderr}");
    assert_eq!(field("deliveries"), SUBSCRIBERS * MESSAGES, "{stderr}");
    assert_eq!(field("lost"), 0, "{stderr}");
    assert_eq!(field("duplicated"), 0, "{stderr}");
    assert_eq!(field("out_of_order"), 0, "{stderr}");
    assert_eq!(report["publisher_replies"]["ok"], MESSAGES, "{stderr}");
    assert!(report["cpu"]["server_cpu_s"].is_number(), "{report}");
    assert_eq!(report["latency"]["samples"], SUBSCRIBERS * MESSAGES);
    server.stop().await;
}
