//! Load benchmark: SSO sign-ins through the provisioning core, and `GET /api/v1/me` over
//! real HTTP, against either backend. Figures go to docs/performance.md.
//!
//! ```sh
//! cargo run --release --example load -- sqlite:///tmp/rollcall-load.db
//! cargo run --release --example load -- postgres://postgres@127.0.0.1:5432/rollcall_load
//! ```
//! The database must be empty (the SQLite file is created; create the PostgreSQL database
//! first). Optional second and third arguments: how many people (default 2000) and how
//! many concurrent clients (default 8).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use rollcall::{
    config::Config,
    http::{self, AppState},
    provisioning::{self, ExternalIdentity, IdpGroup, Via},
    store::{connections, grants, orgs, teams, Store},
};
use tokio::sync::Semaphore;

struct Stats {
    count: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Stats {
    fn report(mut self, what: &str) {
        self.latencies.sort();
        let pct = |p: f64| {
            self.latencies
                [((self.latencies.len() as f64 * p) as usize).min(self.latencies.len() - 1)]
        };
        println!(
            "{what:<44} {:>7.0}/s   p50 {:>6.2} ms   p95 {:>6.2} ms   p99 {:>6.2} ms   ({} in {:.2} s)",
            self.count as f64 / self.elapsed.as_secs_f64(),
            pct(0.50).as_secs_f64() * 1e3,
            pct(0.95).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3,
            self.count,
            self.elapsed.as_secs_f64(),
        );
    }
}

/// Runs `jobs` with at most `concurrency` at once; returns throughput and latencies.
async fn run<F, Fut>(count: usize, concurrency: usize, job: F) -> Stats
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

fn login(connection_id: i64, i: usize) -> ExternalIdentity {
    ExternalIdentity {
        connection_id,
        subject: format!("00u{i:08}"),
        email: Some(format!("person{i}@load.example")),
        given_name: Some("Load".into()),
        family_name: Some(format!("Person {i}")),
        // Every person is in two mapped groups and one unmapped one, like a typical Okta user.
        groups: ["Everyone", "Engineering", &format!("project-{}", i % 10)]
            .iter()
            .map(|g| IdpGroup {
                id: None,
                name: Some(g.to_string()),
            })
            .collect(),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    rollcall::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: load DATABASE_URL [PEOPLE] [CONCURRENCY]");
    let people: usize = args.next().map_or(2000, |a| a.parse().expect("PEOPLE"));
    let concurrency: usize = args.next().map_or(8, |a| a.parse().expect("CONCURRENCY"));
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");

    let mut tx = store.begin().await.unwrap();
    let org = orgs::create(&mut tx, "load", "Load")
        .await
        .expect("an empty database");
    let conn = connections::create(
        &mut tx,
        org.id,
        connections::Kind::Saml,
        "Okta",
        true,
        serde_json::json!({}),
    )
    .await
    .unwrap();
    let eng = teams::create(&mut tx, org.id, "Engineering").await.unwrap();
    let all = teams::create(&mut tx, org.id, "All staff").await.unwrap();
    grants::create_grant(
        &mut tx,
        org.id,
        conn.id,
        &grants::Match::Everyone,
        &[all.id],
        false,
    )
    .await
    .unwrap();
    let group = grants::GroupRef {
        id: None,
        name: Some("Engineering".into()),
    };
    grants::create_mapping(&mut tx, org.id, conn.id, &group, &[eng.id])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    println!(
        "backend {}, {people} people, {concurrency} concurrent clients",
        store.backend()
    );
    let job = |store: Store| {
        move |i: usize| {
            let store = store.clone();
            async move {
                provisioning::provision(&store, &login(conn.id, i), Via::Sso, None)
                    .await
                    .expect("login");
            }
        }
    };
    run(people, concurrency, job(store.clone()))
        .await
        .report("SSO first login (user, membership, teams)");
    run(people, concurrency, job(store.clone()))
        .await
        .report("SSO repeat login (reconcile, no change)");

    // The host application's introspection call, over HTTP through the whole stack.
    let mut tx = store.begin().await.unwrap();
    let user = rollcall::store::users::by_email(&mut tx, "person1@load.example")
        .await
        .unwrap()
        .unwrap();
    let (_, token) = rollcall::store::credentials::create_token(
        &mut tx,
        user.id,
        "load",
        None,
        rollcall::store::credentials::Method::Sso,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = Config {
        database_url: url.clone(),
        ..Config::default()
    };
    let state = AppState::new(store.clone(), config).unwrap();
    tokio::spawn(http::serve(listener, state, std::future::pending()));
    let client = reqwest::Client::new();
    let requests = people * 2;
    let me = move |_| {
        let client = client.clone();
        let token = token.clone();
        async move {
            let r = client
                .get(format!("http://{addr}/api/v1/me"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            r.bytes().await.unwrap();
        }
    };
    run(requests, concurrency, me)
        .await
        .report("GET /api/v1/me (token auth, orgs, teams)");
}
