//! SCIM at scale, measured against the database's own limit: an IdP syncs 100,000 Users
//! into an org through a real `rollcall serve` process, then Groups of 50,000 and 10
//! members are changed, looked up, paged and renamed, over real HTTP, on either backend.
//! Figures, with their share of `../shared/bench/limits.sh` measured in the same run, go to
//! docs/performance.md.
//!
//! ```sh
//! cargo build --release --bin rollcall --example scim_scale
//! BENCH_OUT=docs/performance ./target/release/examples/scim_scale sqlite:///tmp/rollcall-scim.db
//! psql postgres://postgres@127.0.0.1:5432/test -c 'CREATE DATABASE rollcall_scim'
//! BENCH_OUT=docs/performance ./target/release/examples/scim_scale postgres://postgres@127.0.0.1:5432/rollcall_scim
//! ```
//! The database must be empty. Optional second and third arguments: Users (default
//! 100000) and members of the large Group (default 50000).
//!
//! - `BENCH_OUT=DIR` writes `scim-{backend}.json` (every phase) and
//!   `scim-{backend}.svg` (latency against users provisioned) there.
//! - `BENCH_TINY=1` is the configuration CI runs: few requests a phase, no limit
//!   measured, and every count checked (never a speed).
//! - `BENCH_SERVER_BIN` names the server binary (default: `rollcall` beside the examples
//!   directory, i.e. the same build); `BENCH_LIMITS` another copy of limits.sh, and
//!   `BENCH_LIMITS_POSTGRES` the server it uses.
//!
//! The server is a separate process so that its memory (idle, and peak through the sync)
//! is its own, and statements per request come from its `/metrics`.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/server.rs"]
mod server;

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use bench::{record, Summary};
use server::Server;

use rollcall::store::{self, connections, grants, orgs, scim, scim_tokens, teams, Store};
use serde_json::{json, Value};

/// Runs one statement with the same binds on either backend; returns the rows affected.
macro_rules! exec {
    ($store:expr, $sql:expr, $($bind:expr),*) => {
        match $store {
            Store::Sqlite(pool) => sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap().rows_affected(),
            Store::Postgres(pool) => sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap().rows_affected(),
        }
    };
}

/// One number from the database, with the same binds on either backend.
macro_rules! scalar {
    ($store:expr, $sql:expr $(, $bind:expr)*) => {
        match $store {
            Store::Sqlite(pool) => sqlx::query_scalar::<_, i64>($sql)$(.bind($bind))*.fetch_one(pool).await.unwrap(),
            Store::Postgres(pool) => sqlx::query_scalar::<_, i64>($sql)$(.bind($bind))*.fetch_one(pool).await.unwrap(),
        }
    };
}

#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request
                .header("content-type", "application/scim+json")
                .body(body.to_string());
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let bytes = response.bytes().await.unwrap();
        assert!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }
}

fn member_patch(op: &str, scim_id: &str) -> Value {
    let operation = match op {
        "add" => json!({"op": "add", "path": "members", "value": [{"value": scim_id}]}),
        _ => json!({"op": "remove", "path": format!("members[value eq \"{scim_id}\"]")}),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [operation],
    })
}

fn new_user(name: &str) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": name,
        "externalId": format!("ext-{name}"),
        "name": {"givenName": "Scale", "familyName": "Person"},
        "emails": [{"value": name, "type": "work", "primary": true}],
        "active": true,
    })
}

fn user_name(i: usize) -> String {
    format!("person{i}@scale.test")
}

/// One point of the growth curve: latencies with `provisioned` Users in the org.
struct Point {
    provisioned: usize,
    create: Summary,
    lookup: Summary,
}

#[tokio::main]
async fn main() {
    rollcall::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: scim_scale DATABASE_URL [USERS] [GROUP_MEMBERS]");
    let users: usize = args.next().map_or(100_000, |a| a.parse().expect("USERS"));
    let big: usize = args
        .next()
        .map_or(50_000, |a| a.parse().expect("GROUP_MEMBERS"));
    assert!(
        big + 20 <= users && users.is_multiple_of(10),
        "USERS must be a multiple of 10, and the large group must leave Users outside it"
    );
    let tiny = std::env::var_os("BENCH_TINY").is_some();
    // Requests per phase: the full figure, or CI's few.
    let n = |full: usize| if tiny { (full / 20).max(20) } else { full };
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let backend = store.backend();

    let mut tx = store.begin().await.unwrap();
    let org = orgs::create(&mut tx, "scale", "Scale")
        .await
        .expect("an empty database");
    let conn = connections::create(
        &mut tx,
        org.id,
        connections::Kind::Saml,
        "Okta",
        true,
        json!({}),
    )
    .await
    .unwrap();
    let (_, secret) = scim_tokens::create(&mut tx, org.id, conn.id, "scale")
        .await
        .unwrap();
    let everyone = teams::create(&mut tx, org.id, "Everyone").await.unwrap();
    let small_team = teams::create(&mut tx, org.id, "Small").await.unwrap();
    for (name, team) in [("Everyone", everyone.id), ("Small", small_team.id)] {
        let group = grants::GroupRef {
            id: None,
            name: Some(name.into()),
        };
        grants::create_mapping(&mut tx, org.id, conn.id, &group, &[team])
            .await
            .unwrap();
    }
    let big_group = scim::insert_group(&mut tx, org.id, conn.id, "Everyone", None)
        .await
        .unwrap();
    let small_group = scim::insert_group(&mut tx, org.id, conn.id, "Small", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let server = Server::start(&url, |c| c.scim.requests_per_minute = 0).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (idle_rss, _) = server.memory();
    println!("backend {backend}: rollcall serve idle, RSS {idle_rss:.1} MiB");
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("{}/scim/v2/scale", server.origin),
        token: secret.clone(),
    };

    // The sync: the IdP pushes every User, 16 at a time, as Okta's and Entra's
    // provisioning does at first; every tenth of the way, userName lookups at that size.
    let step = users / 10;
    let mut growth = Vec::new();
    for k in 0..10 {
        let c = client.clone();
        let create = server
            .phase(
                "request",
                &format!("sync: POST /Users {}–{}", k * step + 1, (k + 1) * step),
                step,
                16,
                move |i| {
                    let c = c.clone();
                    async move {
                        let name = user_name(k * step + i + 1);
                        c.send(reqwest::Method::POST, "/Users", Some(new_user(&name)))
                            .await;
                    }
                },
            )
            .await;
        let provisioned = (k + 1) * step;
        let c = client.clone();
        let lookup = server
            .phase(
                "request",
                &format!("GET /Users?filter=userName eq, at {provisioned}"),
                n(2000),
                16,
                move |i| {
                    let c = c.clone();
                    async move {
                        let found = c
                            .send(
                                reqwest::Method::GET,
                                &format!(
                                    "/Users?filter=userName%20eq%20%22{}%22",
                                    user_name(i * 7919 % provisioned + 1)
                                ),
                                None,
                            )
                            .await;
                        assert_eq!(found["totalResults"], 1);
                    }
                },
            )
            .await;
        growth.push(Point {
            provisioned,
            create,
            lookup,
        });
    }
    let (_, sync_peak) = server.memory();
    // Counts after the sync equal what was sent: a User, a membership and an audit event
    // each.
    let pushed = scalar!(
        &store,
        "SELECT COUNT(*) FROM scim_users WHERE org_id = $1",
        org.id
    );
    let members = scalar!(
        &store,
        "SELECT COUNT(*) FROM memberships WHERE org_id = $1",
        org.id
    );
    let created_events = scalar!(
        &store,
        "SELECT COUNT(*) FROM audit_events WHERE org_id = $1 AND action = 'scim.user.created'",
        org.id
    );
    assert_eq!(
        (pushed, members, created_events),
        (users as i64, users as i64, users as i64),
        "Users, memberships and audit events after the sync"
    );
    println!("after the sync of {users}: counts match; server peak RSS {sync_peak:.1} MiB");

    // The large and small groups, seeded with set-based SQL (their members' teams too):
    // what is measured is changing them, not filling them.
    let now = store::now();
    let first = scalar!(
        &store,
        "SELECT MIN(id) FROM scim_users WHERE org_id = $1",
        org.id
    );
    for (group, team, count) in [
        (big_group.id, everyone.id, big as i64),
        (small_group.id, small_team.id, 10),
    ] {
        exec!(
            &store,
            "INSERT INTO scim_group_members (group_id, scim_user_id, created_at) \
             SELECT $1, id, $2 FROM scim_users WHERE org_id = $3 AND id < $4",
            group,
            now,
            org.id,
            first + count
        );
        exec!(
            &store,
            "INSERT INTO team_memberships (team_id, org_id, user_id, source, created_at) \
             SELECT $1, $2, s.user_id, 'scim', $3 FROM scim_group_members gm \
             JOIN scim_users s ON s.id = gm.scim_user_id WHERE gm.group_id = $4",
            team,
            org.id,
            now,
            group
        );
    }
    if let Store::Postgres(p) = &store {
        sqlx::query("ANALYZE").execute(p).await.unwrap();
    }

    // One member in and out of a group: the cost must not depend on the group's size.
    // Sequential, as an IdP sends changes to one group.
    let outsiders: Arc<Vec<String>> = Arc::new(match &store {
        Store::Sqlite(p) => sqlx::query_scalar(
            "SELECT scim_id FROM scim_users WHERE org_id = $1 ORDER BY id DESC LIMIT 1000",
        )
        .bind(org.id)
        .fetch_all(p)
        .await
        .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar(
            "SELECT scim_id FROM scim_users WHERE org_id = $1 ORDER BY id DESC LIMIT 1000",
        )
        .bind(org.id)
        .fetch_all(p)
        .await
        .unwrap(),
    });
    for (label, group) in [
        ("50,000", big_group.scim_id.clone()),
        ("10", small_group.scim_id.clone()),
    ] {
        let c = client.clone();
        let outsiders = outsiders.clone();
        server
            .phase(
                "request",
                &format!("PATCH add/remove one member, group of {label}"),
                n(400),
                1,
                move |i| {
                    let c = c.clone();
                    let group = group.clone();
                    let op = if i % 2 == 0 { "add" } else { "remove" };
                    let member = outsiders[(i / 2) % outsiders.len()].clone();
                    async move {
                        c.send(
                            reqwest::Method::PATCH,
                            &format!("/Groups/{group}"),
                            Some(member_patch(op, &member)),
                        )
                        .await;
                    }
                },
            )
            .await;
    }

    type PathFor = Box<dyn Fn(usize) -> String + Send + Sync>;
    let lookups: [(&str, PathFor); 6] = [
        (
            "GET /Users?filter=userName eq (Okta's pre-create lookup)",
            Box::new(move |i| {
                format!(
                    "/Users?filter=userName%20eq%20%22{}%22&startIndex=1&count=100",
                    user_name(i * 7919 % users + 1)
                )
            }),
        ),
        (
            "GET /Users?filter=externalId eq",
            Box::new(move |i| {
                format!(
                    "/Users?filter=externalId%20eq%20%22ext-{}%22",
                    user_name(i * 7919 % users + 1)
                )
            }),
        ),
        (
            "GET /Groups?filter=displayName eq &excludedAttributes=members",
            Box::new(|_| {
                "/Groups?filter=displayName%20eq%20%22Everyone%22&excludedAttributes=members".into()
            }),
        ),
        (
            "GET /Groups?excludedAttributes=members (list)",
            Box::new(|_| "/Groups?excludedAttributes=members".into()),
        ),
        (
            "GET /Users?count=100 (the first page, with its total)",
            Box::new(|_| "/Users?count=100".into()),
        ),
        (
            "GET /Users?startIndex=…&count=100 (a page, with its total)",
            Box::new(move |i| format!("/Users?startIndex={}&count=100", (i * 100) % users + 1)),
        ),
    ];
    let lookups = Arc::new(lookups);
    for index in 0..lookups.len() {
        let c = client.clone();
        let l = lookups.clone();
        server
            .phase("request", lookups[index].0, n(2000), 8, move |i| {
                let c = c.clone();
                let path = (l[index].1)(i);
                async move {
                    c.send(reqwest::Method::GET, &path, None).await;
                }
            })
            .await;
    }

    // As limits.sh measures the database alone: 16 clients.
    let c = client.clone();
    let lookups_16 = server
        .phase(
            "request",
            "GET /Users?filter=userName eq, 16 clients",
            n(4000),
            16,
            move |i| {
                let c = c.clone();
                async move {
                    c.send(
                        reqwest::Method::GET,
                        &format!(
                            "/Users?filter=userName%20eq%20%22{}%22",
                            user_name(i * 7919 % users + 1)
                        ),
                        None,
                    )
                    .await;
                }
            },
        )
        .await;
    let c = client.clone();
    let creates_16 = server
        .phase(
            "request",
            "POST /Users (account, membership, audit), 16 clients",
            n(2000),
            16,
            move |i| {
                let c = c.clone();
                async move {
                    let name = format!("new{i}@scale.test");
                    c.send(reqwest::Method::POST, "/Users", Some(new_user(&name)))
                        .await;
                }
            },
        )
        .await;

    // Renaming the mapped group re-applies every member's teams: here each loses the team
    // the old name mapped to.
    let (s0, _) = server.statements().await;
    let started = Instant::now();
    client
        .send(
            reqwest::Method::PATCH,
            &format!("/Groups/{}", big_group.scim_id),
            Some(json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Everyone (renamed)"}],
            })),
        )
        .await;
    let rename_s = started.elapsed().as_secs_f64();
    let (s1, _) = server.statements().await;
    let left = scalar!(
        &store,
        "SELECT COUNT(*) FROM team_memberships WHERE team_id = $1",
        everyone.id
    );
    assert_eq!(left, 0, "every member of the renamed group left its team");
    println!(
        "{:<62} {rename_s:>9.2} s for {big} members, {} statements",
        "PATCH rename of the mapped group (teams re-applied)",
        s1 - s0 - 1.0
    );
    record(
        "PATCH rename of the mapped group",
        json!({"seconds": rename_s, "members": big, "statements": s1 - s0 - 1.0}),
    );

    // The same lookup with the per-token rate limit on: one counter write per request.
    let limited_server = Server::start(&url, |c| c.scim.requests_per_minute = 1_000_000).await;
    let limited = Client {
        base: format!("{}/scim/v2/scale", limited_server.origin),
        ..client.clone()
    };
    limited_server
        .phase(
            "request",
            "GET /Users?filter=userName eq, with the rate limit counted",
            n(2000),
            8,
            move |i| {
                let c = limited.clone();
                async move {
                    c.send(
                        reqwest::Method::GET,
                        &format!("/Users?filter=userName%20eq%20%22{}%22", user_name(i + 1)),
                        None,
                    )
                    .await;
                }
            },
        )
        .await;
    drop(limited_server);
    let (rss, peak) = server.memory();
    println!("server memory: idle {idle_rss:.1} MiB, peak through the sync {sync_peak:.1} MiB, peak overall {peak:.1} MiB, now {rss:.1} MiB");
    record(
        "memory",
        json!({"idle_rss_mib": idle_rss, "sync_peak_mib": sync_peak, "peak_mib": peak}),
    );

    let mut table = Vec::new();
    if !tiny {
        // The same rows written and read by the database alone, measured now.
        let script =
            std::env::var("BENCH_LIMITS").unwrap_or_else(|_| "../shared/bench/limits.sh".into());
        let postgres = std::env::var("BENCH_LIMITS_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        if let Some(limits) = bench::limits(&script, &postgres, 10, 16) {
            let limit = |what: &str| {
                limits
                    .iter()
                    .find(|(b, w, _)| b == backend && w.starts_with(what))
                    .map(|(_, _, per_s)| *per_s)
            };
            println!();
            println!(
                "{:<44} {:>10} {:>10} {:>12} {:>7}",
                "measure", "rollcall/s", "p99 ms", "limit/s", "share"
            );
            for (what, summary, limit_what) in [
                ("SCIM POST /Users", creates_16, "create tx"),
                (
                    "GET /Users?filter=userName eq",
                    lookups_16,
                    "lookup by userName",
                ),
            ] {
                let limit = limit(limit_what);
                let share = limit.map(|l| summary.per_s / l);
                println!(
                    "{what:<44} {:>10.0} {:>10.1} {:>12} {:>7}",
                    summary.per_s,
                    summary.p99_ms,
                    limit.map_or("-".into(), |l| format!("{l:.0}")),
                    share.map_or("-".into(), |s| format!("{s:.2}")),
                );
                table.push(json!({
                    "measure": what, "per_s": summary.per_s, "p99_ms": summary.p99_ms,
                    "limit_per_s": limit, "share": share,
                }));
            }
        }
    }

    if let Some(dir) = std::env::var_os("BENCH_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let json_path = dir.join(format!("scim-{backend}.json"));
        let report = json!({
            "backend": backend,
            "users": users,
            "group_members": big,
            "tiny": tiny,
            "shares": table,
            "growth": growth.iter().map(|p| json!({
                "provisioned": p.provisioned, "create": p.create.json(), "lookup": p.lookup.json(),
            })).collect::<Vec<_>>(),
            "phases": bench::recorded(),
        });
        std::fs::write(&json_path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        let svg_path = dir.join(format!("scim-{backend}.svg"));
        plot(&svg_path, backend, &growth);
        println!(
            "written: {} and {}",
            json_path.display(),
            svg_path.display()
        );
    }
}

/// Latency (p50 and p99, creates and lookups) against Users already provisioned: flat
/// lines mean costs that do not grow with the org.
fn plot(path: &Path, backend: &str, growth: &[Point]) {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).unwrap();
    let max_x = growth.last().map_or(1, |p| p.provisioned) as f64 / 1000.0;
    let max_y = growth
        .iter()
        .map(|p| p.create.p99_ms.max(p.lookup.p99_ms))
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("rollcall SCIM on {backend}: latency as the org grows (16 clients)"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..max_x, 0.0..max_y)
        .unwrap();
    chart
        .configure_mesh()
        .x_desc("Users provisioned (thousands)")
        .y_desc("latency (ms)")
        .draw()
        .unwrap();
    type Series = (&'static str, RGBColor, fn(&Point) -> f64);
    let series: [Series; 4] = [
        ("POST /Users p99", RED, |p| p.create.p99_ms),
        ("POST /Users p50", RGBColor(240, 150, 150), |p| {
            p.create.p50_ms
        }),
        ("userName lookup p99", BLUE, |p| p.lookup.p99_ms),
        ("userName lookup p50", RGBColor(150, 150, 240), |p| {
            p.lookup.p50_ms
        }),
    ];
    for (name, color, value) in series {
        let points: Vec<(f64, f64)> = growth
            .iter()
            .map(|p| (p.provisioned as f64 / 1000.0, value(p)))
            .collect();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .unwrap()
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color.filled())),
            )
            .unwrap();
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .unwrap();
    root.present().unwrap();
}
