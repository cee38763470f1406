//! What the benchmarks share: run a job many times with bounded concurrency, and report
//! throughput and latency percentiles.
// Each example includes this file and uses the part it needs.
#![allow(dead_code)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::Semaphore;

pub struct Stats {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

/// What a run measured, for comparing with the database's own limit.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub per_s: f64,
    pub p99_ms: f64,
}

impl Stats {
    pub fn report(mut self, what: &str) -> Summary {
        self.latencies.sort();
        let pct = |p: f64| {
            self.latencies
                [((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)]
        };
        println!(
            "{what:<62} {:>7.0}/s   p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms   ({} in {:.2} s)",
            self.count as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.count,
            self.elapsed.as_secs_f64(),
        );
        Summary {
            per_s: self.count as f64 / self.elapsed.as_secs_f64(),
            p99_ms: pct(0.99).as_secs_f64() * 1e3,
        }
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
    let out = std::process::Command::new("bash")
        .args([script, postgres, &seconds.to_string(), &clients.to_string()])
        .output()
        .expect("run limits.sh");
    assert!(
        out.status.success(),
        "limits.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
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

/// Runs `jobs` with at most `concurrency` at once; returns throughput and latencies.
pub async fn run<F, Fut>(count: usize, concurrency: usize, job: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let permits = Arc::new(Semaphore::new(concurrency));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let fut = job(i);
        handles.push(tokio::spawn(async move {
            let t = Instant::now();
            fut.await;
            drop(permit);
            t.elapsed()
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    for h in handles {
        latencies.push(h.await.unwrap());
    }
    Stats {
        count,
        elapsed: start.elapsed(),
        latencies,
    }
}
