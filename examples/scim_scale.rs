//! SCIM at scale: an org of 100,000 Users and a Group of 50,000 members, over real HTTP,
//! against either backend. Figures go to docs/performance.md.
//!
//! ```sh
//! cargo run --release --example scim_scale -- sqlite:///tmp/rollcall-scim.db
//! cargo run --release --example scim_scale -- postgres://postgres@127.0.0.1:5432/rollcall_scim
//! ```
//! The database must be empty (create the PostgreSQL database first). Optional second and
//! third arguments: Users (default 100000) and members of the large Group (default 50000).
//!
//! The org is seeded with set-based SQL (it is the measurement, not the seeding, that
//! matters); then every request goes through the whole server as Okta or Entra would send
//! it.

#[path = "support/bench.rs"]
mod bench;

use std::{sync::Arc, time::Instant};

use bench::run;

use rollcall::{
    config::Config,
    server,
    state::AppState,
    store::{self, connections, grants, orgs, scim, scim_tokens, teams, Store},
};
use serde_json::{json, Value};
use sqlx::types::Json;

/// Runs one seeding statement with the same binds on either backend.
macro_rules! exec {
    ($store:expr, $sql:expr, $($bind:expr),*) => {
        match $store {
            Store::Sqlite(pool) => sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap().rows_affected(),
            Store::Postgres(pool) => sqlx::query($sql)$(.bind($bind))*.execute(pool).await.unwrap().rows_affected(),
        }
    };
}

/// The request path for the i-th request of a run.
type PathFor = Box<dyn Fn(usize) -> String + Send + Sync>;

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

fn member_patch(op: &str, id: i64) -> Value {
    let operation = match op {
        "add" => json!({"op": "add", "path": "members", "value": [{"value": id.to_string()}]}),
        _ => json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}),
    };
    json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": [operation],
    })
}

#[tokio::main]
async fn main() {
    rollcall::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: scim_scale DATABASE_URL [USERS] [GROUP_MEMBERS]");
    let users: i64 = args.next().map_or(100_000, |a| a.parse().expect("USERS"));
    let big: i64 = args
        .next()
        .map_or(50_000, |a| a.parse().expect("GROUP_MEMBERS"));
    assert!(
        big + 1000 <= users,
        "the large group must leave Users outside it"
    );
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");

    let seeding = Instant::now();
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

    let now = store::now();
    let attributes =
        Json(json!({"active": true, "name": {"givenName": "Scale", "familyName": "Person"}}));
    exec!(&store,
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1) \
         INSERT INTO users (email, email_normalized, given_name, family_name, created_at, updated_at) \
         SELECT 'person' || i || '@scale.test', 'person' || i || '@scale.test', 'Scale', 'Person', $2, $2 FROM n",
        users, now);
    exec!(&store,
        "INSERT INTO memberships (org_id, user_id, is_admin, status, source, created_at, updated_at) \
         SELECT $1, id, FALSE, 'active', 'scim', $2, $2 FROM users WHERE email_normalized LIKE '%@scale.test'",
        org.id, now);
    exec!(&store,
        "INSERT INTO scim_users (org_id, connection_id, user_id, created_user, user_name, user_name_normalized, \
         external_id, given_name, family_name, active, attributes, version, created_at, updated_at, scim_id) \
         SELECT $1, $2, id, TRUE, email, email_normalized, 'ext-' || id, 'Scale', 'Person', TRUE, $3, 1, $4, $4, \
         'seed-' || id FROM users WHERE email_normalized LIKE '%@scale.test' ORDER BY id",
        org.id, conn.id, attributes.clone(), now);
    // SCIM ids are opaque text; seeded Users get their key, as Users from before 0.2 have.
    exec!(
        &store,
        "UPDATE scim_users SET scim_id = CAST(id AS TEXT) WHERE org_id = $1",
        org.id
    );
    let first: i64 = match &store {
        Store::Sqlite(p) => sqlx::query_scalar("SELECT MIN(id) FROM scim_users")
            .fetch_one(p)
            .await
            .unwrap(),
        Store::Postgres(p) => sqlx::query_scalar("SELECT MIN(id) FROM scim_users")
            .fetch_one(p)
            .await
            .unwrap(),
    };
    for (group, team, count) in [
        (big_group.id, everyone.id, big),
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
    println!(
        "backend {}: {users} Users, a Group of {big} and one of 10, seeded in {:.1} s",
        store.backend(),
        seeding.elapsed().as_secs_f64()
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = Config {
        database_url: url.clone(),
        ..Config::default()
    };
    // The per-token limit would stop a benchmark; its cost is measured on its own below.
    config.scim.requests_per_minute = 0;
    let state = AppState::new(store.clone(), config.clone()).unwrap();
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    let client = Client {
        http: reqwest::Client::new(),
        base: format!("http://{addr}/scim/v2/scale"),
        token: secret.clone(),
    };

    // One member in and out of a group: the cost must not depend on the group's size.
    // Sequential, as an IdP sends changes to one group.
    let outsider = first + big + 1;
    for (label, group) in [
        ("50,000", big_group.scim_id.clone()),
        ("10", small_group.scim_id.clone()),
    ] {
        let c = client.clone();
        let stats = run(400, 1, move |i| {
            let c = c.clone();
            let group = group.clone();
            let op = if i % 2 == 0 { "add" } else { "remove" };
            async move {
                c.send(
                    reqwest::Method::PATCH,
                    &format!("/Groups/{group}"),
                    Some(member_patch(op, outsider + (i / 2) as i64)),
                )
                .await;
            }
        })
        .await;
        stats.report(&format!("PATCH add/remove one member, group of {label}"));
    }

    let lookups: [(&str, PathFor); 5] = [
        (
            "GET /Users?filter=userName eq (Okta's pre-create lookup)",
            Box::new(move |i| {
                format!(
                    "/Users?filter=userName%20eq%20%22person{}%40scale.test%22&startIndex=1&count=100",
                    (i * 7919) as i64 % users + 1
                )
            }),
        ),
        (
            "GET /Users?filter=externalId eq",
            Box::new(move |i| {
                format!(
                    "/Users?filter=externalId%20eq%20%22ext-{}%22",
                    (i * 7919) as i64 % users + 1
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
            "GET /Users?startIndex=1&count=100 (a page)",
            Box::new(|i| format!("/Users?startIndex={}&count=100", (i * 100) % 10_000 + 1)),
        ),
    ];
    let lookups = Arc::new(lookups);
    for index in 0..lookups.len() {
        let c = client.clone();
        let l = lookups.clone();
        run(2000, 8, move |i| {
            let c = c.clone();
            let path = (l[index].1)(i);
            async move {
                c.send(reqwest::Method::GET, &path, None).await;
            }
        })
        .await
        .report(lookups[index].0);
    }

    // As limits.sh measures the database alone: 16 clients.
    let c = client.clone();
    let lookups_16 = run(4000, 16, move |i| {
        let c = c.clone();
        async move {
            c.send(
                reqwest::Method::GET,
                &format!(
                    "/Users?filter=userName%20eq%20%22person{}%40scale.test%22",
                    (i * 7919) as i64 % users + 1
                ),
                None,
            )
            .await;
        }
    })
    .await
    .report("GET /Users?filter=userName eq, 16 clients");
    let c = client.clone();
    let creates_16 = run(2000, 16, move |i| {
        let c = c.clone();
        async move {
            c.send(
                reqwest::Method::POST,
                "/Users",
                Some(json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": format!("new{i}@scale.test"),
                    "name": {"givenName": "New", "familyName": format!("Person {i}")},
                    "emails": [{"value": format!("new{i}@scale.test"), "type": "work", "primary": true}],
                    "active": true,
                })),
            )
            .await;
        }
    })
    .await
    .report("POST /Users (create: account, membership, audit), 16 clients");

    // Renaming a mapped group re-evaluates every member's teams (here each loses the team
    // the old name mapped to): one transaction, linear in the group's size.
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
    println!(
        "{:<62} {:>9.2} s for {big} members",
        "PATCH rename of the mapped group of 50,000 (teams re-applied)",
        started.elapsed().as_secs_f64()
    );

    // The same lookup with the per-token rate limit on: one counter write per request.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let limited_addr = listener.local_addr().unwrap();
    config.scim.requests_per_minute = 1_000_000;
    let state = AppState::new(store.clone(), config).unwrap();
    tokio::spawn(server::serve(listener, state, std::future::pending()));
    let limited = Client {
        base: format!("http://{limited_addr}/scim/v2/scale"),
        ..client.clone()
    };
    run(2000, 8, move |i| {
        let c = limited.clone();
        async move {
            c.send(
                reqwest::Method::GET,
                &format!(
                    "/Users?filter=userName%20eq%20%22person{}%40scale.test%22",
                    i + 1
                ),
                None,
            )
            .await;
        }
    })
    .await
    .report("GET /Users?filter=userName eq, with the rate limit counted");

    // The same rows written and read by the database alone, measured now, on this machine.
    let script =
        std::env::var("ROLLCALL_LIMITS").unwrap_or_else(|_| "../shared/bench/limits.sh".into());
    let postgres = std::env::var("ROLLCALL_LIMITS_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let Some(limits) = bench::limits(&script, &postgres, 10, 16) else {
        return;
    };
    let backend = store.backend();
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
    let mut json = Vec::new();
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
        json.push(json!({
            "backend": backend, "measure": what, "per_s": summary.per_s,
            "p99_ms": summary.p99_ms, "limit_per_s": limit, "share": share,
        }));
    }
    if let Ok(path) = std::env::var("ROLLCALL_BENCH_JSON") {
        std::fs::write(&path, serde_json::to_string_pretty(&json).unwrap()).unwrap();
        println!("written to {path}");
    }
}
