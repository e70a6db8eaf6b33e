//! Load generator: the measuring instrument of docs/benchmarks.md and `scripts/bench.sh`.
//! It speaks Roomcast's protocol and the peers' (`--target roomcast|json|socketio`), and
//! every scenario reports what the server and the loadgen itself spent in CPU (they share
//! the machine's cores), and says when the loadgen, not the server, was the bottleneck.
//!
//! - `fanout`: N subscribers in one room, a publisher at R msgs/s for T s: deliveries/s,
//!   latency p50/p90/p99/max, lost, duplicated, out of order (`fanout.rs`, `track.rs`).
//! - `slow-consumer`: the same plus K subscribers that stop reading (`stalled.rs`).
//! - `cluster-fanout`: subscribers spread over several `--url`s, the publisher on the first.
//! - `idle`: N joined idle connections: connections/s and server RSS per connection.
//! - `chat`: persisted chats/s (Roomcast only); `latency`: cross-node chat latency.
//!
//! This file owns the command line, the runtime (its thread count is part of the verdict)
//! and the process's file limit.
//!
//! ```sh
//! ROOMCAST_DEV=1 ROOMCAST_MAX_CONNECTIONS_PER_USER=100000 ROOMCAST_RATE_LIMIT_PER_SEC=100000 \
//!   ROOMCAST_RATE_LIMIT_BURST=100000 target/release/roomcast &
//! target/release/loadgen --server-pid $! fanout --subscribers 1000 --rate 200 --duration 10
//! ```

mod chat;
mod dialect;
mod fanout;
mod idle;
mod latency;
mod procfs;
mod publisher;
mod report;
mod stalled;
mod track;

use clap::{Parser, Subcommand};

use crate::report::Common;

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Roomcast load generator")]
struct Cli {
    /// Also print the result as one JSON object line on stdout (the summary goes to stderr)
    #[arg(long, global = true)]
    json: bool,
    /// Server process id, for its CPU and memory from /proc; repeat it for several nodes
    #[arg(long = "server-pid", global = true)]
    server_pids: Vec<u32>,
    /// Clock ticks per second of /proc/PID/stat (`getconf CLK_TCK`)
    #[arg(long, global = true, default_value_t = 100)]
    clk_tck: u64,
    /// The loadgen's worker threads [default: the machine's cores]
    #[arg(long, global = true)]
    threads: Option<usize>,
    /// Secret the server signs tokens with (HS256)
    #[arg(long, global = true, env = "ROOMCAST_JWT_SECRET", default_value = roomcast_server::config::DEV_JWT_SECRET)]
    secret: String,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// N subscribers in one room, a publisher at R msgs/s: deliveries, latency, losses
    Fanout(fanout::FanoutArgs),
    /// A fanout in which K subscribers stop reading: the others' figures, and their fate
    SlowConsumer(fanout::FanoutArgs),
    /// A fanout with subscribers spread over the --url nodes, the publisher on the first
    ClusterFanout(fanout::FanoutArgs),
    /// N joined idle connections: connections/s and the server's memory per connection
    Idle(idle::IdleArgs),
    /// Chat as fast as the server accepts and report persisted chats per second (Roomcast)
    Chat(chat::ChatArgs),
    /// Senders on one node, receivers on another: chats/s, deliveries/s, latency, losses
    Latency(latency::LatencyArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Ten thousand connections need more descriptors than a shell's usual soft limit.
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit < 1024 => report::say(&format!("file limit only {limit}")),
        Ok(_) => {}
        Err(e) => report::say(&format!("could not raise the file limit: {e}")),
    }
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    let common = Common {
        secret: cli.secret,
        server_pids: cli.server_pids,
        clk_tck: cli.clk_tck,
        threads,
    };
    let outcome = runtime.block_on(async {
        match cli.scenario {
            Scenario::Fanout(args) => fanout::run(fanout::Mode::Fanout, args, &common).await,
            Scenario::SlowConsumer(args) => {
                fanout::run(fanout::Mode::SlowConsumer, args, &common).await
            }
            Scenario::ClusterFanout(args) => {
                fanout::run(fanout::Mode::ClusterFanout, args, &common).await
            }
            Scenario::Idle(args) => idle::run(args, &common).await,
            Scenario::Chat(args) => chat::run(args, &common).await,
            Scenario::Latency(args) => latency::run(args, &common).await,
        }
    })?;
    report::emit(&outcome, cli.json);
    // The connections still open are dropped with the runtime; no need to wait for
    // tasks that only answer heartbeats.
    runtime.shutdown_background();
    Ok(())
}
