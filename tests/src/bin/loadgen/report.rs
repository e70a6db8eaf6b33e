//! What every scenario shares on the way out: the run's common settings, the outcome (a
//! human summary and one JSON object), the publisher's pacing, and the verdict on who was
//! the bottleneck. The loadgen runs on the cores of the server it measures, so a figure
//! without that verdict could be the loadgen's own limit passed off as the server's.

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use serde_json::{Value, json};

use crate::procfs::{self, CpuUse, round};

/// Settings every scenario uses.
#[derive(Debug, Clone)]
pub struct Common {
    pub secret: String,
    pub server_pids: Vec<u32>,
    pub clk_tck: u64,
    /// The loadgen's worker threads.
    pub threads: usize,
}

impl Common {
    /// A token for `sub`, valid for an hour.
    pub fn token(&self, sub: &str) -> String {
        let claims = json!({ "sub": sub, "exp": roomcast_server::now_ms() / 1000 + 3600 });
        roomcast_tests::sign(&self.secret, &claims)
    }
}

/// A scenario's result.
#[derive(Debug)]
pub struct Outcome {
    pub human: Vec<String>,
    pub json: Value,
}

/// A progress line, on stderr so that `--json`'s stdout stays one line.
pub fn say(line: &str) {
    eprintln!("loadgen: {line}");
}

/// Prints the outcome: with `json`, the summary on stderr and the object on stdout.
pub fn emit(outcome: &Outcome, json: bool) {
    for line in &outcome.human {
        if json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if json {
        println!("{}", outcome.json);
    }
}

/// How well the publisher kept to its schedule.
#[derive(Debug, Clone, Copy, Default)]
pub struct Pacing {
    pub sent: u64,
    /// Sends that left more than the lateness threshold after their slot.
    pub late: u64,
    pub max_lag: Duration,
    pub total_lag: Duration,
    /// Time spent inside `send` (waiting on the socket: the server not reading).
    pub blocked: Duration,
    /// How far behind its schedule the publisher ended.
    pub final_lag: Duration,
    pub elapsed: Duration,
}

impl Pacing {
    pub fn note_lag(&mut self, lag: Duration, late: Duration) {
        if lag > late {
            self.late += 1;
        }
        self.max_lag = self.max_lag.max(lag);
        self.total_lag += lag;
    }

    /// More than 5% of the sends were late, or the run ended 100 ms behind: a rare late
    /// wake-up on a shared machine is jitter, not a publisher unable to keep up.
    pub fn fell_behind(&self) -> bool {
        self.late * 20 > self.sent || self.final_lag > Duration::from_millis(100)
    }

    /// Most of the lateness came from sends waiting on the socket.
    fn backpressured(&self) -> bool {
        self.blocked > Duration::from_millis(50) && self.blocked * 2 > self.total_lag
    }

    pub fn describe(&self) -> String {
        format!(
            "publisher: {} sent in {:.2} s; {} later than 5 ms after their slot (max {:.1} ms, ended {:.1} ms behind); {:.1} ms inside send",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.late,
            ms(self.max_lag),
            ms(self.final_lag),
            ms(self.blocked)
        )
    }

    pub fn to_json(self) -> Value {
        json!({
            "sent": self.sent,
            "late": self.late,
            "max_lag_ms": round(ms(self.max_lag), 3),
            "mean_lag_ms": round(ms(self.total_lag) / self.sent.max(1) as f64, 3),
            "final_lag_ms": round(ms(self.final_lag), 3),
            "blocked_ms": round(ms(self.blocked), 3),
            "elapsed_s": round(self.elapsed.as_secs_f64(), 3),
            "fell_behind": self.fell_behind(),
        })
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Who limited the run.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// `none`, `loadgen`, `server-backpressure` or `cores-full`.
    pub kind: &'static str,
    pub reason: String,
}

impl Verdict {
    pub fn describe(&self) -> String {
        match self.kind {
            "none" => format!("bottleneck: none seen ({})", self.reason),
            kind => format!("bottleneck: {kind}: {}", self.reason),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({ "kind": self.kind, "reason": self.reason })
    }
}

/// The loadgen is the bottleneck when it used more than 85% of a core per worker thread,
/// or when its publisher fell behind while the server had CPU left; the server is, when
/// the publisher's sends waited on the socket. On a machine whose cores were all busy (the
/// two sides, or other processes too), neither can be blamed alone: that is said too.
pub fn verdict(cpu: &CpuUse, threads: usize, pacing: Option<&Pacing>) -> Verdict {
    let cores = procfs::cores();
    let loadgen = cpu.loadgen_pct();
    // The machine's own count covers other processes (builds) too; without it, the two
    // sides' sum is the best guess.
    let busy = cpu
        .machine_pct
        .or_else(|| cpu.server_pct().map(|s| s + loadgen));
    let cores_full = busy.is_some_and(|b| b >= 0.9 * cores * 100.0);
    let mut usage = match cpu.server_pct() {
        Some(s) => format!("loadgen {loadgen:.0}%, server {s:.0}%"),
        None => format!("loadgen {loadgen:.0}%, server unknown"),
    };
    if let Some(o) = cpu.others_pct() {
        usage += &format!(", other processes {o:.0}%");
    }
    usage += &format!(" of {cores:.0} cores' {:.0}%", cores * 100.0);
    if loadgen >= 85.0 * threads as f64 {
        return Verdict {
            kind: "loadgen",
            reason: format!(
                "the loadgen used {loadgen:.0}% with {threads} worker thread(s) ({usage})"
            ),
        };
    }
    if let Some(p) = pacing.filter(|p| p.fell_behind()) {
        let behind = format!(
            "the publisher fell behind ({} late sends, max {:.0} ms)",
            p.late,
            ms(p.max_lag)
        );
        let (kind, why) = if p.backpressured() {
            (
                "server-backpressure",
                format!("its sends waited {:.0} ms on the socket", ms(p.blocked)),
            )
        } else if cores_full {
            ("cores-full", "with every core busy".to_owned())
        } else {
            ("loadgen", "while the server had CPU left".to_owned())
        };
        return Verdict {
            kind,
            reason: format!("{behind} {why} ({usage})"),
        };
    }
    if cores_full {
        return Verdict {
            kind: "cores-full",
            reason: format!(
                "on schedule, but every core was busy: latencies include waiting for a CPU ({usage})"
            ),
        };
    }
    Verdict {
        kind: "none",
        reason: usage,
    }
}
