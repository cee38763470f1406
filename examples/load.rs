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

#[path = "support/bench.rs"]
mod bench;

use bench::run;

use rollcall::{
    config::Config,
    provisioning::{self, ExternalIdentity, IdpGroup, Via},
    server,
    state::AppState,
    store::{connections, grants, orgs, teams, Store},
};

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
    run("SSO first login", people, concurrency, job(store.clone()))
        .await
        .report("SSO first login (user, membership, teams)");
    run("SSO repeat login", people, concurrency, job(store.clone()))
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
    tokio::spawn(server::serve(listener, state, std::future::pending()));
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
    run("GET /api/v1/me", requests, concurrency, me)
        .await
        .report("GET /api/v1/me (token auth, orgs, teams)");
}
