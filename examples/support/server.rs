//! A `rollcall serve` process for the benchmarks: its own process, so that its memory and
//! CPU are its own, configured by a file only, with `/metrics` open to the benchmark.
// Each example includes this file and uses the part it needs.
#![allow(dead_code)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use rollcall::config::Config;
use serde_json::json;

use crate::bench::{record, run, Summary};

pub const METRICS_TOKEN: &str = "bench-metrics-token-of-at-least-32-characters";

/// A `rollcall serve` process, stopped when dropped.
pub struct Server {
    child: Child,
    pub origin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `rollcall serve` on a free port of 127.0.0.1 with the benchmark's
    /// configuration, changed by `adjust`; returns once it is ready.
    pub async fn start(url: &str, adjust: impl FnOnce(&mut Config)) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = Config {
            database_url: url.into(),
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            ..Config::default()
        };
        config.public_base_url = format!("http://127.0.0.1:{port}");
        config.metrics.token = Some(METRICS_TOKEN.into());
        config.secrets.key_file = dir.path().join("rollcall.key").display().to_string();
        config.mail.file_dir = dir.path().join("mail").display().to_string();
        // A line per request would measure the terminal, not the server.
        config.log.level = "warn".into();
        adjust(&mut config);
        let file = dir.path().join("rollcall.toml");
        std::fs::write(&file, toml::to_string(&config).unwrap()).unwrap();
        let bin = std::env::var_os("BENCH_SERVER_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                let exe = std::env::current_exe().unwrap();
                exe.parent().unwrap().parent().unwrap().join("rollcall")
            });
        assert!(
            bin.exists(),
            "{} is missing: build it with the example (cargo build --release --bin rollcall --example scim_scale)",
            bin.display()
        );
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&file)
            .arg("serve")
            // Only the file configures it: no ROLLCALL_* or RUST_LOG from this shell.
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("err.log")).unwrap())
            .spawn()
            .unwrap();
        let mut server = Server {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..300 {
            if server.child.try_wait().unwrap().is_some() {
                break;
            }
            if let Ok(r) = reqwest::get(format!("{}/readyz", server.origin)).await {
                if r.status().is_success() {
                    return server;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "rollcall serve did not become ready: {}",
            std::fs::read_to_string(server._dir.path().join("err.log")).unwrap_or_default()
        );
    }

    /// Resident and peak resident memory of the server process, in MiB (Linux' /proc).
    pub fn memory(&self) -> (f64, f64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
                .map_or(f64::NAN, |kb| kb / 1024.0)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// `(statements, transactions)` the server has sent to the database so far.
    pub async fn statements(&self) -> (f64, f64) {
        let page = reqwest::Client::new()
            .get(format!("{}/metrics", self.origin))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let value = |name: &str| {
            page.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        (
            value("rollcall_db_statements_total "),
            value("rollcall_db_transactions_total "),
        )
    }

    /// Runs a phase of `count` jobs (each one `unit`: a request, a sign-in) and records its
    /// statements and transactions per job alongside its latencies, from a scrape of
    /// `/metrics` before and after (the scrape's own outbox query taken off).
    pub async fn phase<F, Fut>(
        &self,
        unit: &str,
        label: &str,
        count: usize,
        concurrency: usize,
        job: F,
    ) -> Summary
    where
        F: Fn(usize) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let (s0, t0) = self.statements().await;
        let stats = run(label, count, concurrency, job).await;
        let (s1, t1) = self.statements().await;
        let statements = (s1 - s0 - 1.0) / count as f64;
        let transactions = (t1 - t0 - 1.0) / count as f64;
        let summary = stats.summary();
        println!(
            "{label:<62} {:>7.0}/s   p50 {:>6.2} ms   p99 {:>6.2} ms   {statements:>5.1} statements, {transactions:.1} tx a {unit}",
            summary.per_s, summary.p50_ms, summary.p99_ms,
        );
        let mut figures = summary.json();
        figures[format!("statements_per_{unit}")] = json!(statements);
        figures[format!("transactions_per_{unit}")] = json!(transactions);
        record(label, figures);
        summary
    }
}
