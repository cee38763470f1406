//! What the benchmarks share: run a job many times with bounded concurrency behind a
//! progress bar, report throughput and latency percentiles, keep every figure for the JSON
//! output, and read the database's own limit for the same rows.
// Each example includes this file and uses the part it needs.
#![allow(dead_code)]

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

pub struct Stats {
    count: usize,
    elapsed: Duration,
    /// Request i's latency at index i.
    latencies: Vec<Duration>,
}

/// What a run measured, for the table, the JSON and the share of the limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    pub count: usize,
    pub per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

impl Summary {
    pub fn json(&self) -> Value {
        json!({
            "count": self.count, "per_s": self.per_s,
            "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
        })
    }
}

/// Every phase's figures, in the order they ran, for the JSON output.
static RESULTS: Mutex<Vec<Value>> = Mutex::new(Vec::new());

/// Records one phase's figures (and anything else worth keeping with them).
pub fn record(phase: &str, mut figures: Value) {
    figures["phase"] = json!(phase);
    RESULTS.lock().unwrap().push(figures);
}

pub fn recorded() -> Vec<Value> {
    RESULTS.lock().unwrap().clone()
}

impl Stats {
    pub fn summary(&self) -> Summary {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let pct = |p: f64| {
            sorted
                .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1e3)
        };
        Summary {
            count: self.count,
            per_s: self.count as f64 / self.elapsed.as_secs_f64(),
            p50_ms: pct(0.50),
            p95_ms: pct(0.95),
            p99_ms: pct(0.99),
        }
    }

    /// Prints the phase's line and records it.
    pub fn report(self, what: &str) -> Summary {
        let s = self.summary();
        println!(
            "{what:<62} {:>7.0}/s   p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms   ({} in {:.2} s)",
            s.per_s,
            s.p50_ms,
            s.p95_ms,
            s.p99_ms,
            self.count,
            self.elapsed.as_secs_f64(),
        );
        record(what, s.json());
        s
    }
}

/// What the database alone does on this machine for the rows the same requests write and
/// read, measured now by `shared/bench/limits.sh` (PostgreSQL through pgbench, SQLite
/// through Python's sqlite3): `(backend, what, per second)`. `None` when the script is not
/// there.
pub fn limits(
    script: &str,
    postgres: &str,
    seconds: u32,
    clients: u32,
) -> Option<Vec<(String, String, f64)>> {
    if !std::path::Path::new(script).exists() {
        eprintln!("no {script}: figures are printed without their share of the limit");
        return None;
    }
    let spinner = ProgressBar::new_spinner().with_message("the database's own limit (limits.sh)");
    spinner.enable_steady_tick(Duration::from_millis(200));
    let out = std::process::Command::new("bash")
        .args([script, postgres, &seconds.to_string(), &clients.to_string()])
        .output()
        .expect("run limits.sh");
    spinner.finish_and_clear();
    assert!(
        out.status.success(),
        "limits.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| {
                Some((
                    v["backend"].as_str()?.to_string(),
                    v["what"].as_str()?.to_string(),
                    v["per_s"].as_f64()?,
                ))
            })
            .collect(),
    )
}

/// Runs `count` jobs with at most `concurrency` at once behind a progress bar named
/// `label` (on stderr; indicatif hides it when stderr is not a terminal); returns
/// throughput and each job's latency.
pub async fn run<F, Fut>(label: &str, count: usize, concurrency: usize, job: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let bar = ProgressBar::new(count as u64).with_message(label.to_string());
    bar.set_style(
        ProgressStyle::with_template("{msg:<58} {bar:30} {pos:>7}/{len:7} {per_sec:>12} {eta}")
            .expect("a valid template"),
    );
    let permits = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let fut = job(i);
        let bar = bar.clone();
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            fut.await;
            drop(permit);
            bar.inc(1);
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for h in handles {
        latencies.push(h.await.unwrap());
    }
    bar.finish_and_clear();
    Stats {
        count,
        elapsed: start.elapsed(),
        latencies,
    }
}
