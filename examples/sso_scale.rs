//! SSO sign-ins at scale. SAML, measured against what samael itself does: Okta-shaped
//! responses, signed with the fixture IdP key by `xmlsec1` (an independent signer) before
//! the clock starts, posted to a real `rollcall serve` process's ACS by browsers that each
//! started their own sign-in (so every binding cookie and request ID is real), and the same
//! responses verified by samael alone, in this process, on the same machine. OIDC, the
//! callbacks of Entra ID sign-ins: each browser starts its sign-in at rollcall, an Entra
//! stand-in in this process (`support/entra.rs`) signs its ID token in advance, and with
//! the clock running the browser brings the code back; rollcall redeems it at the
//! stand-in's token endpoint (client secret, PKCE), validates the token, provisions and
//! starts a session.
//!
//! ```sh
//! cargo build --release --bin rollcall --example sso_scale
//! ./target/release/examples/sso_scale sqlite:///tmp/rollcall-sso.db
//! psql postgres://postgres@127.0.0.1:5432/test -c 'CREATE DATABASE rollcall_sso'
//! ./target/release/examples/sso_scale postgres://postgres@127.0.0.1:5432/rollcall_sso
//! ```
//! The database must be empty. Optional second argument: sign-ins per phase (default 1000).
//! Counts are checked after each protocol: a member in the mapped team per person, an
//! audit event per sign-in.
//! `BENCH_OUT=DIR` writes `sso-{backend}.json`; `BENCH_TINY=1` runs a few and checks counts.

#[path = "support/bench.rs"]
mod bench;
#[path = "support/entra.rs"]
mod entra;
#[path = "support/server.rs"]
mod server;

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::Instant,
};

use base64::Engine;
use bench::record;
use chrono::{SecondsFormat, Utc};
use entra::EntraStandIn;
use rollcall::store::{connections, grants, orgs, teams, Store};
use samael::{
    crypto::AllowedSignatureAlgorithm, metadata::EntityDescriptor,
    service_provider::ServiceProvider,
};
use serde_json::json;
use server::Server;

const ORG: &str = "acme";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("idp-fixtures/okta")
        .join(name)
}

/// The fixture's Okta response for person `i`, answering `request_id`, before signing.
fn response_xml(origin: &str, request_id: &str, i: usize) -> String {
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let now = Utc::now();
    let groups: String = ["Engineering", "Everyone"]
        .iter()
        .map(|g| format!(r#"<saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">{g}</saml2:AttributeValue>"#))
        .collect();
    std::fs::read_to_string(fixture("response.xml"))
        .unwrap()
        .replace(
            "{{RESPONSE_ID}}",
            &format!("id{}", uuid::Uuid::new_v4().simple()),
        )
        .replace(
            "{{ASSERTION_ID}}",
            &format!("id{}", uuid::Uuid::new_v4().simple()),
        )
        .replace("{{IN_RESPONSE_TO}}", request_id)
        .replace("{{DESTINATION}}", &format!("{origin}/saml/{ORG}/acs"))
        .replace("{{RECIPIENT}}", &format!("{origin}/saml/{ORG}/acs"))
        .replace("{{AUDIENCE}}", &format!("{origin}/saml/{ORG}/metadata"))
        .replace("{{ISSUER}}", "http://www.okta.com/exk1rollcall0test")
        .replace("{{STATUS}}", "urn:oasis:names:tc:SAML:2.0:status:Success")
        .replace(
            "{{CONFIRMATION_METHOD}}",
            "urn:oasis:names:tc:SAML:2.0:cm:bearer",
        )
        .replace("{{NAME_ID}}", &format!("00u{i:08}"))
        .replace("{{EMAIL}}", &format!("person{i}@{ORG}.test"))
        .replace("{{GIVEN_NAME}}", "Load")
        .replace("{{FAMILY_NAME}}", &format!("Person {i}"))
        .replace("{{GROUP_VALUES}}", &groups)
        .replace("{{NOW}}", &time(now))
        .replace("{{NOT_BEFORE}}", &time(now - chrono::Duration::seconds(30)))
        .replace(
            "{{NOT_ON_OR_AFTER}}",
            &time(now + chrono::Duration::minutes(30)),
        )
        .replace(
            "{{SIGNATURE_ALGORITHM}}",
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        )
        .replace(
            "{{DIGEST_ALGORITHM}}",
            "http://www.w3.org/2001/04/xmlenc#sha256",
        )
}

/// Signs the assertion with `xmlsec1` and the fixture IdP key, as Okta signs it.
fn sign(xml: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (dir.path().join("in.xml"), dir.path().join("out.xml"));
    std::fs::write(&input, xml).unwrap();
    let done = Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!(
            "{},{}",
            fixture("idp-key.pem").display(),
            fixture("idp-cert.pem").display()
        ))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .output()
        .expect("xmlsec1 (scripts/deps.sh --test installs it)");
    assert!(
        done.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&done.stderr)
    );
    std::fs::read_to_string(output).unwrap()
}

/// A browser that has started a sign-in, and the signed response Okta would post back.
struct Prepared {
    browser: reqwest::Client,
    relay: String,
    request_id: String,
    xml: String,
}

/// A new browser that starts a sign-in at `url`: the browser, and where rollcall sends it
/// (the IdP, with the request in the query).
async fn start_sign_in(url: &str) -> (reqwest::Client, reqwest::Url) {
    // A thousand people's browsers: none keeps an idle connection open (a thousand of
    // them would fill the server's connection cap while they wait their turn).
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = browser.get(url).send().await.unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap_or_default());
    let location = reqwest::Url::parse(r.headers()["location"].to_str().unwrap()).unwrap();
    (browser, location)
}

/// Where a response sends the browser; empty without a Location.
fn location(r: &reqwest::Response) -> String {
    r.headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A query parameter of `url`, which must be there.
fn query_param(url: &reqwest::Url, name: &str) -> String {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no {name} in {url}"))
}

async fn prepare(origin: &str, connection: i64, i: usize) -> Prepared {
    let (browser, location) = start_sign_in(&format!(
        "{origin}/saml/{ORG}/login?connection={connection}&return_to=/welcome"
    ))
    .await;
    let param = |name: &str| query_param(&location, name);
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(param("SAMLRequest"))
        .unwrap();
    let mut request = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut request)
        .unwrap();
    let request_id = request
        .split("ID=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string();
    let unsigned = response_xml(origin, &request_id, i);
    let xml = tokio::task::spawn_blocking(move || sign(&unsigned))
        .await
        .unwrap();
    Prepared {
        browser,
        relay: param("RelayState"),
        request_id,
        xml,
    }
}

/// Starts `n` sign-ins (two at a time: signing runs a process each).
async fn prepare_all(origin: &str, connection: i64, n: usize) -> Vec<Prepared> {
    let bar = indicatif::ProgressBar::new(n as u64).with_message("starting sign-ins, signing");
    let mut prepared = Vec::with_capacity(n);
    for start in (0..n).step_by(2) {
        let batch: Vec<_> = (start..(start + 2).min(n))
            .map(|i| prepare(origin, connection, i))
            .collect();
        prepared.extend(futures::future::join_all(batch).await);
        bar.inc(2);
    }
    bar.finish_and_clear();
    prepared
}

/// Verifications per second by samael alone, for one response, on `threads` threads for
/// `seconds`: the same ServiceProvider settings rollcall's ACS uses, built once.
fn samael_rate(origin: &str, one: &Prepared, threads: usize, seconds: f64) -> f64 {
    let metadata: EntityDescriptor = std::fs::read_to_string(fixture("metadata.xml"))
        .unwrap()
        .parse()
        .unwrap();
    let sp = ServiceProvider {
        entity_id: Some(format!("{origin}/saml/{ORG}/metadata")),
        acs_url: Some(format!("{origin}/saml/{ORG}/acs")),
        idp_metadata: metadata,
        max_clock_skew: chrono::Duration::seconds(120),
        max_issue_delay: chrono::Duration::seconds(420),
        allowed_signature_algorithms: Some(vec![
            AllowedSignatureAlgorithm::RsaSha256,
            AllowedSignatureAlgorithm::RsaSha384,
            AllowedSignatureAlgorithm::RsaSha512,
        ]),
        ..ServiceProvider::default()
    };
    let sp = &sp;
    let expected = [one.request_id.as_str()];
    let started = Instant::now();
    let total: usize = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut n = 0;
                    while started.elapsed().as_secs_f64() < seconds {
                        sp.parse_xml_response(&one.xml, Some(&expected))
                            .expect("samael verifies the fixture response");
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).sum()
    });
    total as f64 / started.elapsed().as_secs_f64()
}

#[tokio::main]
async fn main() {
    rollcall::install_crypto_provider();
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: sso_scale DATABASE_URL [SIGN_INS]");
    let tiny = std::env::var_os("BENCH_TINY").is_some();
    let n: usize = args.next().map_or(if tiny { 40 } else { 1000 }, |a| {
        a.parse().expect("SIGN_INS")
    });
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    let backend = store.backend();

    let mut tx = store.begin().await.unwrap();
    let org = orgs::create(&mut tx, ORG, "Acme")
        .await
        .expect("an empty database");
    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap();
    let conn = connections::create(
        &mut tx,
        org.id,
        connections::Kind::Saml,
        "Okta",
        true,
        json!({"idp_metadata_xml": metadata}),
    )
    .await
    .unwrap();
    let team = teams::create(&mut tx, org.id, "Engineering").await.unwrap();
    grants::create_grant(
        &mut tx,
        org.id,
        conn.id,
        &grants::Match::Everyone,
        &[],
        false,
    )
    .await
    .unwrap();
    let group = grants::GroupRef {
        id: None,
        name: Some("Engineering".into()),
    };
    grants::create_mapping(&mut tx, org.id, conn.id, &group, &[team.id])
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // No limit on sign-in starts: every browser here comes from 127.0.0.1.
    let entra = EntraStandIn::start().await;
    let authority = entra.url.clone();
    let server = Server::start(&url, move |c| {
        c.http.sign_in_starts_per_minute = 0;
        c.oidc.entra_authority = authority;
        c.oidc.allow_private_addresses = true;
    })
    .await;
    let origin = server.origin.clone();

    let mut phases = Vec::new();
    for phase in [
        "first sign-in (account, membership, team)",
        "repeat sign-in",
    ] {
        let prepared = Arc::new(prepare_all(&origin, conn.id, n).await);
        let p = prepared.clone();
        let o = origin.clone();
        let summary = server
            .phase("sign_in", &format!("SAML {phase}"), n, 8, move |i| {
                let p = p.clone();
                let o = o.clone();
                async move {
                    let one = &p[i];
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&one.xml);
                    let r = one
                        .browser
                        .post(format!("{o}/saml/{ORG}/acs"))
                        .form(&[
                            ("SAMLResponse", encoded.as_str()),
                            ("RelayState", &one.relay),
                        ])
                        .send()
                        .await
                        .unwrap();
                    let (status, next) = (r.status(), location(&r));
                    assert!(
                        status == 303 && next.starts_with(&format!("/saml/{ORG}/finish?")),
                        "ACS: {status} {next} {}",
                        r.text().await.unwrap_or_default()
                    );
                    let r = one.browser.get(format!("{o}{next}")).send().await.unwrap();
                    assert_eq!(r.status(), 303, "finish");
                    assert_eq!(r.headers()["location"], "/welcome");
                }
            })
            .await;
        phases.push(summary);
    }

    // Counts equal what was sent: an account and a membership (with its mapped team) per
    // person, and an audit event per sign-in.
    check_counts(&store, org.id, n, 0, "SAML").await;

    let oidc = oidc_phases(&server, &store, &entra, n).await;

    let seconds = if tiny { 0.3 } else { 5.0 };
    let one = prepare_all(&origin, conn.id, 1).await.pop().unwrap();
    let samael_1 = samael_rate(&origin, &one, 1, seconds);
    let samael_2 = samael_rate(&origin, &one, 2, seconds);
    println!(
        "samael alone, the same response: {samael_1:.0}/s on one thread, {samael_2:.0}/s on two"
    );
    let (rss, peak) = server.memory();
    println!("server memory: now {rss:.1} MiB, peak {peak:.1} MiB");
    let shares: Vec<_> = phases.iter().map(|s| s.per_s / samael_2).collect();
    println!(
        "share of samael's rate (two threads): first sign-ins {:.2}, repeat sign-ins {:.2}",
        shares[0], shares[1]
    );
    println!(
        "OIDC callbacks: first sign-ins {:.0}/s, repeat sign-ins {:.0}/s (target 1,000/s)",
        oidc[0].per_s, oidc[1].per_s
    );
    record(
        "samael verify",
        json!({"one_thread_per_s": samael_1, "two_threads_per_s": samael_2,
               "share_first": shares[0], "share_repeat": shares[1],
               "server_rss_mib": rss, "server_peak_mib": peak}),
    );
    if let Some(dir) = std::env::var_os("BENCH_OUT") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("sso-{backend}.json"));
        let report =
            json!({"backend": backend, "sign_ins": n, "tiny": tiny, "phases": bench::recorded()});
        std::fs::write(&path, serde_json::to_string_pretty(&report).unwrap()).unwrap();
        println!("written: {}", path.display());
    }
}

/// A browser that has started an OIDC sign-in and holds the code Entra would send it back
/// with.
struct Started {
    browser: reqwest::Client,
    callback: String,
}

/// Starts `n` OIDC sign-ins at rollcall, and has the stand-in sign each person in.
async fn start_oidc(origin: &str, entra: &EntraStandIn, connection: i64, n: usize) -> Vec<Started> {
    let bar = indicatif::ProgressBar::new(n as u64).with_message("starting OIDC sign-ins");
    let mut started = Vec::with_capacity(n);
    for i in 0..n {
        let (browser, authorize) = start_sign_in(&format!(
            "{origin}/oidc/contoso/login?connection={connection}&return_to=/welcome"
        ))
        .await;
        let param = |name: &str| query_param(&authorize, name);
        let code = entra.sign_in(i, &param("nonce"), &param("code_challenge"));
        let mut callback = reqwest::Url::parse(&format!("{origin}/oidc/callback")).unwrap();
        callback
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", &param("state"));
        started.push(Started {
            browser,
            callback: callback.to_string(),
        });
        bar.inc(1);
    }
    bar.finish_and_clear();
    started
}

/// OIDC first and repeat sign-ins (callbacks) for `n` people of a second org, whose Entra
/// connection an admin made through the admin API (so its client secret is sealed as in
/// production); counts checked after.
async fn oidc_phases(
    server: &Server,
    store: &Store,
    entra: &EntraStandIn,
    n: usize,
) -> Vec<bench::Summary> {
    let origin = &server.origin;
    let admin =
        rollcall::operator::bootstrap(store, "contoso", "Contoso", "admin@contoso.test", None)
            .await
            .unwrap();
    let api = reqwest::Client::new();
    let post = |path: String, body: serde_json::Value| {
        let request = api
            .post(format!("{origin}/api/v1/orgs/contoso{path}"))
            .bearer_auth(&admin.token)
            .json(&body);
        async move {
            let r = request.send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let connection = post(
        "/connections".into(),
        json!({"kind": "oidc", "name": "Entra ID", "settings": {"preset": "entra",
               "tenant_id": entra::TENANT, "client_id": entra::CLIENT_ID,
               "client_secret": entra::CLIENT_SECRET}}),
    )
    .await["id"]
        .as_i64()
        .unwrap();
    let team = post("/teams".into(), json!({"name": "Engineering"})).await["id"]
        .as_i64()
        .unwrap();
    let base = format!("/connections/{connection}");
    post(
        format!("{base}/grants"),
        json!({"match": {"kind": "everyone"}}),
    )
    .await;
    post(
        format!("{base}/group-mappings"),
        json!({"group": {"id": entra::ENG_GROUP}, "team_ids": [team]}),
    )
    .await;

    let mut phases = Vec::new();
    for phase in [
        "first sign-in (account, membership, team)",
        "repeat sign-in",
    ] {
        let started = Arc::new(start_oidc(origin, entra, connection, n).await);
        let s = started.clone();
        let summary = server
            .phase(
                "sign_in",
                &format!("OIDC callback, {phase}"),
                n,
                8,
                move |i| {
                    let s = s.clone();
                    async move {
                        let one = &s[i];
                        let r = one.browser.get(&one.callback).send().await.unwrap();
                        let (status, to) = (r.status(), location(&r));
                        assert!(
                            status == 303 && to == "/welcome",
                            "callback: {status} {to} {}",
                            r.text().await.unwrap_or_default()
                        );
                    }
                },
            )
            .await;
        phases.push(summary);
    }
    // The admin is a member too, outside the team.
    check_counts(store, admin.org.id, n, 1, "OIDC").await;
    phases
}

/// Counts equal what was sent to `org_id`: a membership (less `others`, members from
/// elsewhere) and a place in the mapped team per person, and an audit event per sign-in of
/// its two phases.
async fn check_counts(store: &Store, org_id: i64, n: usize, others: i64, protocol: &str) {
    macro_rules! count {
        ($sql:expr) => {
            match store {
                Store::Sqlite(p) => sqlx::query_scalar::<_, i64>($sql)
                    .bind(org_id)
                    .fetch_one(p)
                    .await
                    .unwrap(),
                Store::Postgres(p) => sqlx::query_scalar::<_, i64>($sql)
                    .bind(org_id)
                    .fetch_one(p)
                    .await
                    .unwrap(),
            }
        };
    }
    let members = count!("SELECT COUNT(*) FROM memberships WHERE org_id = $1") - others;
    let in_team = count!("SELECT COUNT(*) FROM team_memberships WHERE org_id = $1");
    let logins =
        count!("SELECT COUNT(*) FROM audit_events WHERE org_id = $1 AND action = 'sso.login'");
    assert_eq!(
        (members, in_team, logins),
        (n as i64, n as i64, 2 * n as i64),
        "{protocol}: members, team members and sign-in events"
    );
    println!(
        "{protocol} counts match: {n} members in the mapped team, {} sign-ins audited",
        2 * n
    );
}
