//! The `rollcall` binary as an operator runs it: migrate, bootstrap, domain verify,
//! user set-password, serve, SIGTERM.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use reqwest::StatusCode;

use crate::harness::{Backend, TestDb};

fn rollcall(db: &TestDb) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rollcall"));
    cmd.env("ROLLCALL_DATABASE_URL", &db.url)
        .env("ROLLCALL_LOG__FORMAT", "json")
        .env_remove("RUST_LOG");
    cmd
}

async fn migrate_bootstrap_serve_and_stop(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let dir = tempfile::tempdir().unwrap();

    let out = rollcall(&db)
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bootstrap = |email: &str| {
        rollcall(&db)
            .current_dir(dir.path())
            .args([
                "bootstrap",
                "--org-slug",
                "acme",
                "--org-name",
                "Acme Corp",
                "--admin-email",
                email,
            ])
            .output()
            .unwrap()
    };
    let out = bootstrap("ops@acme.test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout
        .lines()
        .find(|l| l.starts_with("rc_pat_"))
        .unwrap_or_else(|| panic!("no token in {stdout}"))
        .trim()
        .to_string();
    assert!(stdout.contains("shown once"));
    // And how to reach the console: a password, then the sign-in page.
    assert!(
        stdout.contains("rollcall user set-password --email ops@acme.test")
            && stdout.contains("/login")
            && stdout.contains("/orgs/acme/members"),
        "{stdout}"
    );

    // A second bootstrap of the same org must not mint another admin token.
    let out = bootstrap("intruder@evil.test");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // The operator vouches for a domain; an unknown org is reported by name.
    let verify = |org: &str| {
        rollcall(&db)
            .current_dir(dir.path())
            .args(["domain", "verify", "--org", org, "--domain", "Acme.Example"])
            .output()
            .unwrap()
    };
    let out = verify("acme");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme.example is verified"));
    let out = verify("nosuch");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("organization not found"));

    // The operator sets a password through standard input; the policy is the pages' policy.
    let set_password = |email: &str, password: &str| {
        let mut child = rollcall(&db)
            .current_dir(dir.path())
            .args(["user", "set-password", "--email", email])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let out = set_password("ops@acme.test", "tangerine-viaduct-41-mollusc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Password set for ops@acme.test"));
    let out = set_password("ops@acme.test", "short");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least"));
    let out = set_password("nobody@acme.test", "tangerine-viaduct-41-mollusc");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("user not found"));

    let mut child = rollcall(&db)
        .current_dir(dir.path())
        .arg("serve")
        .env("ROLLCALL_LISTEN", "127.0.0.1:0")
        .env("ROLLCALL_MAIL__POLL_INTERVAL_MS", "50")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let address = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("server logs that it listens");
        let event: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if event["message"] == "rollcall listening" {
            break event["address"].as_str().unwrap().to_string();
        }
    };

    let client = reqwest::Client::new();
    let r = client
        .get(format!("http://{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = client
        .get(format!("http://{address}/api/v1/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let me: serde_json::Value = r.json().await.unwrap();
    assert_eq!(me["orgs"][0]["slug"], "acme");
    assert_eq!(me["orgs"][0]["is_admin"], true);
    let r = client
        .get(format!("http://{address}/api/v1/orgs/acme/domains"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let domains: serde_json::Value = r.json().await.unwrap();
    assert_eq!(domains[0]["status"], "verified");
    assert_eq!(domains[0]["verified_by"], "operator");
    let r = client
        .post(format!("http://{address}/api/v1/orgs/acme/teams"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"name": "Ops"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // The server's mail worker delivers an invitation with the default file transport.
    let r = client
        .post(format!("http://{address}/api/v1/orgs/acme/invitations"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"emails": ["new@acme.example"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let mail_dir = dir.path().join("mail");
    let mut written = Vec::new();
    for _ in 0..100 {
        written = std::fs::read_dir(&mail_dir)
            .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        if !written.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(written.len(), 1, "one .eml file in {}", mail_dir.display());
    let eml = std::fs::read_to_string(&written[0]).unwrap();
    assert!(eml.contains("To: new@acme.example"), "{eml}");
    assert!(eml.contains("/invite/rc_inv_"), "{eml}");

    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    // The reader thread may not have passed on the last lines yet: read until it ends (the
    // child's stdout closed), rather than taking only what already arrived.
    let mut rest = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(5)) {
        rest.push(line);
    }
    assert!(rest.iter().any(|l| l.contains("\"stopped\"")), "{rest:?}");
}

async fn configuration_errors_are_reported(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let out = rollcall(&db)
        .arg("migrate")
        .env("ROLLCALL_LISTNE", "127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("configuration error") && stderr.contains("listne"),
        "{stderr}"
    );

    let out = rollcall(&db)
        .arg("migrate")
        .env("ROLLCALL_DATABASE_URL", "mysql://x/y")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported database URL"));
}

/// `rollcall backup FILE` copies a SQLite database while a server uses it; the copy opens
/// and holds what was committed. PostgreSQL is pointed at pg_dump.
async fn backup_copies_a_database_in_use(backend: Backend) {
    let app = crate::harness::TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    app.create_team("acme", &admin.token, "Platform").await;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.db");
    let backup = || {
        Command::new(env!("CARGO_BIN_EXE_rollcall"))
            .env("ROLLCALL_DATABASE_URL", &app.config.database_url)
            .env_remove("RUST_LOG")
            .arg("backup")
            .arg(&copy)
            .output()
            .unwrap()
    };
    let out = backup();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    match backend {
        Backend::Postgres(_) => {
            assert!(!out.status.success());
            assert!(stderr.contains("pg_dump"), "{stderr}");
            assert!(!copy.exists());
        }
        Backend::Sqlite => {
            assert!(out.status.success(), "{stderr}");
            // The server carried on meanwhile.
            app.create_team("acme", &admin.token, "Later").await;
            let store = rollcall::store::Store::connect(&format!("sqlite://{}", copy.display()))
                .await
                .unwrap();
            let mut tx = store.read().await.unwrap();
            let org = rollcall::store::orgs::by_slug(&mut tx, "acme")
                .await
                .unwrap()
                .expect("the org is in the copy");
            let teams = rollcall::store::teams::list(&mut tx, org.id).await.unwrap();
            drop(tx);
            store.close().await;
            let names: Vec<&str> = teams.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, vec!["Platform"]);
            // Never over an existing file.
            let out = backup();
            assert!(!out.status.success());
            assert!(String::from_utf8_lossy(&out.stderr).contains("exists"));
        }
    }
    app.stop().await;
}

/// How many CPUs each thread of process `pid` may run on (Linux' /proc).
fn cpus_of_threads(pid: u32) -> Vec<(String, usize)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_string()
            };
            (field("Name:"), cpu_count(&field("Cpus_allowed_list:")))
        })
        .collect()
}

/// CPUs in a list such as `0-3,6`.
fn cpu_count(list: &str) -> usize {
    list.split(',')
        .filter(|part| !part.is_empty())
        .map(|part| match part.split_once('-') {
            Some((a, b)) => b.parse::<usize>().unwrap() - a.parse::<usize>().unwrap() + 1,
            None => 1,
        })
        .sum()
}

/// `rollcall serve` on SQLite keeps its threads on one CPU (`sqlite_one_cpu`, on by
/// default), all but the one that hashes a password; on PostgreSQL, or with the setting
/// off, every thread may run where the process was started.
async fn a_sqlite_server_runs_on_one_cpu(backend: Backend) {
    let db = TestDb::new(&backend).await;
    let given = cpu_count(
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim(),
    );
    let sqlite = matches!(backend, Backend::Sqlite);
    for (setting, pinned) in [("true", sqlite), ("false", false)] {
        let dir = tempfile::tempdir().unwrap();
        let port = crate::harness::free_port();
        let mut child = rollcall(&db)
            .current_dir(dir.path())
            .arg("serve")
            .env("ROLLCALL_LISTEN", format!("127.0.0.1:{port}"))
            .env(
                "ROLLCALL_PUBLIC_BASE_URL",
                format!("http://127.0.0.1:{port}"),
            )
            .env("ROLLCALL_SQLITE_ONE_CPU", setting)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut said_pinned = false;
        for line in stdout.lines().map_while(Result::ok) {
            said_pinned |= line.contains("the server runs on one CPU");
            if line.contains("rollcall listening") {
                break;
            }
        }
        assert_eq!(said_pinned, pinned, "sqlite_one_cpu = {setting}");
        // A password sign-in (of no one: the decoy hash is checked all the same).
        let browser = crate::harness::Browser::at(&format!("127.0.0.1:{port}"));
        let r = browser
            .sign_in("nobody@acme.test", "tangerine-viaduct-41-mollusc")
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        assert!(r.body.contains("do not match an account"), "{}", r.body);
        let threads = cpus_of_threads(child.id());
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap();
        // The main thread, a runtime worker and each connection's thread at least.
        assert!(threads.len() >= 3, "{threads:?}");
        let on_one = threads.iter().filter(|(_, n)| *n == 1).count();
        let on_all = threads.iter().filter(|(_, n)| *n == given).count();
        if pinned {
            // Only the blocking-pool thread that hashed may run anywhere.
            assert!(on_one >= threads.len() - 1, "{threads:?}");
            assert!(on_all >= 1, "the hashing thread: {threads:?}");
        } else {
            assert_eq!(on_all, threads.len(), "{threads:?}");
        }
    }
}

crate::backend_tests!(
    a_sqlite_server_runs_on_one_cpu,
    migrate_bootstrap_serve_and_stop,
    configuration_errors_are_reported,
    backup_copies_a_database_in_use,
);
