//! What `/proc` says about the servers under test and about the load generator itself:
//! CPU time (`/proc/PID/stat` utime + stime, in clock ticks) and resident memory
//! (`VmRSS` of `/proc/PID/status`). The loadgen shares the machine's cores with the server,
//! so every figure it reports comes with what each side spent to produce it.

use std::time::Instant;

use anyhow::Context;
use serde_json::{Value, json};

/// CPU time of a process so far, in clock ticks; `None` for the loadgen itself.
fn cpu_ticks(pid: Option<u32>) -> anyhow::Result<u64> {
    let path = pid.map_or_else(
        || "/proc/self/stat".to_owned(),
        |p| format!("/proc/{p}/stat"),
    );
    let stat = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count fields from
    // after its closing one, where field 3 (state) is the first.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' in stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("field {n} of {path}"))
    };
    Ok(field(14)? + field(15)?)
}

/// Resident set size of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")
}

/// The summed RSS of the servers, in KiB; `None` without pids or when one is gone.
pub fn servers_rss_kib(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&p| rss_kib(p).ok()).sum()
}

/// Busy and total ticks of the whole machine, all cores (`/proc/stat`'s `cpu` line):
/// what other processes (other builds) take from the cores shows here.
fn machine_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let idle = v.get(3)? + v.get(4)?;
    let total: u64 = v.iter().take(8).sum();
    Some((total - idle, total))
}

/// CPU counters at one moment.
#[derive(Debug, Clone)]
pub struct Sample {
    at: Instant,
    machine: Option<(u64, u64)>,
    /// The servers' summed ticks; `None` without pids or when one could not be read
    /// (it exited).
    servers: Option<u64>,
    me: u64,
}

/// Reads the counters of the servers and of this process.
pub fn sample(pids: &[u32]) -> Sample {
    let servers = if pids.is_empty() {
        None
    } else {
        pids.iter().map(|&p| cpu_ticks(Some(p)).ok()).sum()
    };
    Sample {
        at: Instant::now(),
        machine: machine_ticks(),
        servers,
        // Our own stat file is always there.
        me: cpu_ticks(None).unwrap_or(0),
    }
}

/// CPU spent between two samples.
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    /// Length of the window, s.
    pub window_secs: f64,
    /// Server CPU seconds (all `--server-pid`s), if known.
    pub server_secs: Option<f64>,
    /// Loadgen CPU seconds.
    pub loadgen_secs: f64,
    /// The whole machine's busy share, in % of one core (all cores: up to cores × 100).
    pub machine_pct: Option<f64>,
}

impl CpuUse {
    pub fn between(start: &Sample, end: &Sample, clk_tck: u64) -> Self {
        let tick = 1.0 / clk_tck.max(1) as f64;
        Self {
            window_secs: end.at.duration_since(start.at).as_secs_f64(),
            server_secs: start
                .servers
                .zip(end.servers)
                .map(|(a, b)| b.saturating_sub(a) as f64 * tick),
            loadgen_secs: end.me.saturating_sub(start.me) as f64 * tick,
            machine_pct: start
                .machine
                .zip(end.machine)
                .and_then(|((b0, t0), (b1, t1))| {
                    let total = t1.saturating_sub(t0);
                    (total > 0)
                        .then(|| b1.saturating_sub(b0) as f64 / total as f64 * cores() * 100.0)
                }),
        }
    }

    /// Server CPU as a percentage of one core over the window.
    pub fn server_pct(&self) -> Option<f64> {
        self.server_secs.map(|s| pct(s, self.window_secs))
    }

    pub fn loadgen_pct(&self) -> f64 {
        pct(self.loadgen_secs, self.window_secs)
    }

    /// What processes other than the loadgen and the servers used, % of one core.
    pub fn others_pct(&self) -> Option<f64> {
        let machine = self.machine_pct?;
        Some((machine - self.loadgen_pct() - self.server_pct()?).max(0.0))
    }

    /// Server CPU µs per unit of work (a delivery, a connection, a chat).
    pub fn server_us_per(&self, units: u64) -> Option<f64> {
        self.server_secs
            .filter(|_| units > 0)
            .map(|s| s * 1e6 / units as f64)
    }

    /// The figures as JSON fields, with `per` naming the unit of `server_us_per_*`.
    pub fn to_json(self, per: &str, units: u64) -> Value {
        let mut fields = json!({
            "window_s": round(self.window_secs, 3),
            "server_cpu_s": self.server_secs.map(|s| round(s, 3)),
            "server_cpu_pct": self.server_pct().map(|p| round(p, 1)),
            "loadgen_cpu_s": round(self.loadgen_secs, 3),
            "loadgen_cpu_pct": round(self.loadgen_pct(), 1),
            "machine_cpu_pct": self.machine_pct.map(|p| round(p, 1)),
            "others_cpu_pct": self.others_pct().map(|p| round(p, 1)),
            "cores": cores(),
        });
        fields[format!("server_cpu_us_per_{per}")] =
            json!(self.server_us_per(units).map(|u| round(u, 3)));
        fields
    }

    /// One line for the human summary.
    pub fn describe(&self, per: &str, units: u64) -> String {
        let server = match (self.server_secs, self.server_pct()) {
            (Some(s), Some(p)) => {
                let each = self
                    .server_us_per(units)
                    .map_or_else(String::new, |u| format!(", {u:.2} µs per {per}"));
                format!("server {s:.2} s CPU ({p:.0}% of a core){each}")
            }
            _ => "server CPU unknown (no --server-pid)".to_owned(),
        };
        let others = self
            .others_pct()
            .map_or_else(String::new, |o| format!("; other processes {o:.0}%"));
        format!(
            "CPU over {:.2} s: {server}; loadgen {:.2} s ({:.0}% of a core){others} (of {:.0} cores)",
            self.window_secs,
            self.loadgen_secs,
            self.loadgen_pct(),
            cores()
        )
    }
}

/// The machine's cores.
pub fn cores() -> f64 {
    std::thread::available_parallelism().map_or(1, usize::from) as f64
}

fn pct(secs: f64, window: f64) -> f64 {
    if window > 0.0 {
        secs / window * 100.0
    } else {
        0.0
    }
}

/// `x` with `digits` decimals, for JSON that a reader skims.
pub fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_its_own_counters() {
        let pid = std::process::id();
        assert!(rss_kib(pid).expect("own RSS") > 0);
        let start = sample(&[pid]);
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let used = CpuUse::between(&start, &sample(&[pid]), 100);
        assert!(used.server_secs.is_some());
        assert!(used.loadgen_secs >= 0.0);
    }
}
