//! SAML with Okta: a local stand-in signs Okta-shaped responses at test time with the
//! `xmlsec1` command (an independent signer) and the test IdP key in `idp-fixtures/okta/`;
//! each test drives the browser flow over real HTTP. The attack corpus
//! (`attacks_are_refused_with_their_reason`) mirrors security-cases.md; a clean Okta
//! response is the control.

use std::{
    io::Read,
    path::{Path, PathBuf},
    process::Command,
};

use base64::Engine;
use chrono::{Duration, SecondsFormat, Utc};
use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Backend, Browser, PageResponse, TestApp};

crate::backend_tests!(
    a_response_posted_twice_at_once_is_used_once,
    a_saml_response_signs_in_only_the_browser_that_started_it,
    unauthenticated_posts_cannot_flood_the_audit_trail,
    an_idp_error_response_says_what_the_idp_said,
    a_new_sign_in_replaces_the_browsers_session,
    okta_sign_in_provisions_and_maps_groups,
    a_signed_response_covers_its_assertion,
    idp_initiated_sign_in_only_where_a_connection_opts_in,
    an_invitation_continues_through_okta,
    metadata_by_url_is_fetched_and_refreshed,
    authn_requests_are_signed_when_configured,
    encrypted_assertions_decrypt_inside_a_signed_response,
    single_logout_ends_the_session_and_tells_okta,
    sha1_and_attribute_names_are_the_admins_choice,
    connection_shows_its_certificates_and_warnings,
    attacks_are_refused_with_their_reason,
    a_replayed_assertion_is_refused,
    metadata_and_settings_are_checked,
);

const ISSUER: &str = "http://www.okta.com/exk1rollcall0test";
const SHA256: (&str, &str) = (
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmlenc#sha256",
);
const SHA1: (&str, &str) = (
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2000/09/xmldsig#sha1",
);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("idp-fixtures/okta")
        .join(name)
}

fn time(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// One Okta response, before signing; every field an attack may change.
#[derive(Clone)]
pub(crate) struct Spec {
    pub(crate) response_id: String,
    pub(crate) assertion_id: String,
    pub(crate) in_response_to: String,
    pub(crate) destination: String,
    pub(crate) recipient: String,
    pub(crate) audience: String,
    pub(crate) issuer: String,
    pub(crate) status: String,
    pub(crate) method: String,
    pub(crate) name_id: String,
    pub(crate) email: String,
    pub(crate) groups: Vec<String>,
    pub(crate) issue_instant: chrono::DateTime<Utc>,
    pub(crate) not_before: chrono::DateTime<Utc>,
    pub(crate) not_on_or_after: chrono::DateTime<Utc>,
    pub(crate) algorithms: (&'static str, &'static str),
}

impl Spec {
    pub(crate) fn okta(app: &TestApp, org: &str, request_id: &str) -> Spec {
        Spec::for_base(&app.config.public_base_url, org, request_id)
    }

    fn for_base(base: &str, org: &str, request_id: &str) -> Spec {
        let base = base.trim_end_matches('/');
        let now = Utc::now();
        Spec {
            response_id: format!("id{}", uuid::Uuid::new_v4().simple()),
            assertion_id: format!("id{}", uuid::Uuid::new_v4().simple()),
            in_response_to: request_id.into(),
            destination: format!("{base}/saml/{org}/acs"),
            recipient: format!("{base}/saml/{org}/acs"),
            audience: format!("{base}/saml/{org}/metadata"),
            issuer: ISSUER.into(),
            status: "urn:oasis:names:tc:SAML:2.0:status:Success".into(),
            method: "urn:oasis:names:tc:SAML:2.0:cm:bearer".into(),
            name_id: "00u1ada0lovelace".into(),
            email: "ada@acme.test".into(),
            groups: vec!["Engineering".into(), "Everyone".into()],
            issue_instant: now,
            not_before: now - Duration::seconds(30),
            not_on_or_after: now + Duration::minutes(5),
            algorithms: SHA256,
        }
    }

    pub(crate) fn xml(&self) -> String {
        let template = std::fs::read_to_string(fixture("response.xml")).unwrap();
        let groups: String = self
            .groups
            .iter()
            .map(|g| format!(r#"<saml2:AttributeValue xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="xs:string">{g}</saml2:AttributeValue>"#))
            .collect();
        template
            .replace("{{RESPONSE_ID}}", &self.response_id)
            .replace("{{ASSERTION_ID}}", &self.assertion_id)
            .replace("{{IN_RESPONSE_TO}}", &self.in_response_to)
            .replace("{{DESTINATION}}", &self.destination)
            .replace("{{RECIPIENT}}", &self.recipient)
            .replace("{{AUDIENCE}}", &self.audience)
            .replace("{{ISSUER}}", &self.issuer)
            .replace("{{STATUS}}", &self.status)
            .replace("{{CONFIRMATION_METHOD}}", &self.method)
            .replace("{{NAME_ID}}", &self.name_id)
            .replace("{{EMAIL}}", &self.email)
            .replace("{{GIVEN_NAME}}", "Ada")
            .replace("{{FAMILY_NAME}}", "Lovelace")
            .replace("{{GROUP_VALUES}}", &groups)
            .replace("{{NOW}}", &time(self.issue_instant))
            .replace("{{NOT_BEFORE}}", &time(self.not_before))
            .replace("{{NOT_ON_OR_AFTER}}", &time(self.not_on_or_after))
            .replace("{{SIGNATURE_ALGORITHM}}", self.algorithms.0)
            .replace("{{DIGEST_ALGORITHM}}", self.algorithms.1)
    }
}

/// Signs with `xmlsec1` (Debian's xmlsec1 package): the assertion by default.
fn sign_with(xml: &str, key: &str, cert: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.xml");
    let output = dir.path().join("out.xml");
    std::fs::write(&input, xml).unwrap();
    let status = Command::new("xmlsec1")
        .arg("--sign")
        .arg("--privkey-pem")
        .arg(format!(
            "{},{}",
            fixture(key).display(),
            fixture(cert).display()
        ))
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:assertion:Assertion",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Response",
        ])
        .args([
            "--id-attr:ID",
            "urn:oasis:names:tc:SAML:2.0:protocol:Extensions",
        ])
        .arg("--output")
        .arg(&output)
        .arg(&input)
        .output()
        .expect("the xmlsec1 command (scripts/deps.sh --test installs it)");
    assert!(
        status.status.success(),
        "xmlsec1: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    std::fs::read_to_string(output).unwrap()
}

/// The Okta response with its signature template moved from the assertion to the Response
/// (Okta's "Response: Signed"), ready to sign.
fn response_level(spec: &Spec, xml: &str) -> String {
    let sig_start = xml.find("<ds:Signature").unwrap();
    let sig_end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let template = xml[sig_start..sig_end].replace(
        &format!("URI=\"#{}\"", spec.assertion_id),
        &format!("URI=\"#{}\"", spec.response_id),
    );
    let without = format!("{}{}", &xml[..sig_start], &xml[sig_end..]);
    let issuer_end = without.find("</saml2:Issuer>").unwrap() + "</saml2:Issuer>".len();
    format!(
        "{}{template}{}",
        &without[..issuer_end],
        &without[issuer_end..]
    )
}

pub(crate) fn sign(xml: &str) -> String {
    sign_with(xml, "idp-key.pem", "idp-cert.pem")
}

pub(crate) fn b64(xml: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(xml)
}

/// An org with an Okta SAML connection (the fixture metadata), an "everyone" grant and a
/// mapping of the Okta group "Engineering" to a team.
pub(crate) async fn okta_org(app: &TestApp, slug: &str) -> (String, i64) {
    let admin = app.bootstrap(slug, &format!("admin@{slug}.test")).await;
    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap();
    let r = app
        .post(
            &format!("/api/v1/orgs/{slug}/connections"),
            &admin.token,
            json!({"kind": "saml", "name": "Okta", "settings": {"idp_metadata_xml": metadata}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let connection = r.body["id"].as_i64().unwrap();
    let team = app.create_team(slug, &admin.token, "Engineering").await;
    let base = format!("/api/v1/orgs/{slug}/connections/{connection}");
    let r = app
        .post(
            &format!("{base}/grants"),
            &admin.token,
            json!({"match": {"kind": "everyone"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .post(
            &format!("{base}/group-mappings"),
            &admin.token,
            json!({"group": {"name": "Engineering"}, "team_ids": [team]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    (admin.token, connection)
}

/// Starts a sign-in as a browser would; returns the RelayState and the AuthnRequest's ID,
/// read from the request the IdP would receive.
pub(crate) async fn start(browser: &Browser, org: &str, connection: i64) -> (String, String) {
    let r = browser
        .get(&format!(
            "/saml/{org}/login?connection={connection}&return_to=/welcome"
        ))
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = reqwest::Url::parse(r.location()).unwrap();
    assert!(location
        .as_str()
        .starts_with("https://rollcall-test.okta.com/app/"));
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| panic!("no {name} in {location}"))
    };
    let id = request_id_of(&param("SAMLRequest"));
    assert!(id.len() > 40, "a request ID with 128 bits or more: {id}");
    (param("RelayState"), id)
}

pub(crate) async fn post_acs(
    browser: &Browser,
    org: &str,
    response: &str,
    relay: Option<&str>,
) -> PageResponse {
    let mut form = vec![("SAMLResponse", response)];
    if let Some(relay) = relay {
        form.push(("RelayState", relay));
    }
    let r = browser.post(&format!("/saml/{org}/acs"), &form).await;
    // A verified SP-initiated sign-in continues at a same-site GET in the browser, which
    // is where the binding cookie from the start is shown: the browser follows it.
    if r.status == StatusCode::SEE_OTHER
        && r.location().starts_with(&format!("/saml/{org}/finish?"))
    {
        return browser.get(r.location()).await;
    }
    r
}

/// The page refused the sign-in, and the audit trail says why.
async fn refused_because(app: &TestApp, admin: &str, r: &PageResponse, says: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let event = last_event(app, "acme", admin).await;
    assert_eq!(event["action"], "sso.login_failed", "{event}");
    let reason = event["after"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains(says), "{reason:?} does not say {says:?}");
}

pub(crate) async fn last_event(app: &TestApp, org: &str, token: &str) -> serde_json::Value {
    let r = app
        .get(&format!("/api/v1/orgs/{org}/audit?limit=1"), token)
        .await;
    r.body["data"][0].clone()
}

async fn okta_sign_in_provisions_and_maps_groups(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/welcome");

    // The session is the person's: /me shows the org, and the team the Okta group maps to.
    let me = browser.get("/api/v1/me").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.body);
    let me: serde_json::Value = serde_json::from_str(&me.body).unwrap();
    assert_eq!(me["user"]["email"], "ada@acme.test");
    assert_eq!(me["user"]["given_name"], "Ada");
    let org = &me["orgs"][0];
    assert_eq!(org["slug"], "acme", "{me}");
    let teams: Vec<&str> = org["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(teams, vec!["Engineering"], "{me}");
    let event = last_event(&app, "acme", &admin).await;
    assert_eq!(event["action"], "sso.login", "{event}");

    // The request is used: the same response again is refused, kindly.
    let again = post_acs(
        &Browser::new(&app),
        "acme",
        &b64(&sign(&spec.xml())),
        Some(&relay),
    )
    .await;
    assert_eq!(again.status, StatusCode::FORBIDDEN);
    assert!(again.body.contains("expired"), "{}", again.body);

    // A second sign-in is the same person, found by the persistent NameID.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let mut spec = Spec::okta(&app, "acme", &request_id);
    spec.email = "ada.lovelace@acme.test".into();
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = app.get("/api/v1/orgs/acme/members", &admin).await;
    assert_eq!(
        r.body["data"].as_array().unwrap().len(),
        2,
        "admin and Ada only"
    );
    app.stop().await;
}

/// Makes the SAMLResponse field for a request ID.
type MakeResponse = Box<dyn Fn(&TestApp, &str) -> String + Send + Sync>;

/// An attack: how the signed response is made or changed, and the reason the audit trail
/// must give.
struct Case {
    name: &'static str,
    response: MakeResponse,
    reason: &'static str,
}

fn case(
    name: &'static str,
    reason: &'static str,
    response: impl Fn(&TestApp, &str) -> String + Send + Sync + 'static,
) -> Case {
    Case {
        name,
        response: Box::new(response),
        reason,
    }
}

/// A spec change, then signed normally.
fn signed(
    change: impl Fn(&mut Spec) + Send + Sync + 'static,
) -> impl Fn(&TestApp, &str) -> String + Send + Sync {
    move |app, request_id| {
        let mut spec = Spec::okta(app, "acme", request_id);
        change(&mut spec);
        b64(&sign(&spec.xml()))
    }
}

/// The signed Okta response, then changed as XML text.
fn tampered(
    change: impl Fn(String) -> String + Send + Sync + 'static,
) -> impl Fn(&TestApp, &str) -> String + Send + Sync {
    move |app, request_id| b64(&change(sign(&Spec::okta(app, "acme", request_id).xml())))
}

/// The Okta response changed as XML text, then signed.
fn changed_then_signed(
    change: impl Fn(String) -> String + Send + Sync + 'static,
) -> impl Fn(&TestApp, &str) -> String + Send + Sync {
    move |app, request_id| b64(&sign(&change(Spec::okta(app, "acme", request_id).xml())))
}

fn assertion_of(signed: &str) -> String {
    let start = signed.find("<saml2:Assertion").unwrap();
    let end = signed.find("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
    signed[start..end].to_string()
}

fn attacks() -> Vec<Case> {
    vec![
        // Signature wrapping (security-cases 1–10, 15–17): a second, attacker-made assertion
        // beside, around or inside the signed one.
        case(
            "XSW: evil assertion before the signed one",
            "assertions",
            tampered(|s| {
                let evil = assertion_of(&s)
                    .replace("00u1ada0lovelace", "00uEVIL")
                    .replace("ada@acme.test", "evil@acme.test");
                s.replacen("<saml2:Assertion", &format!("{evil}<saml2:Assertion"), 1)
            }),
        ),
        case(
            "XSW: evil assertion after the signed one",
            "assertions",
            tampered(|s| {
                let evil = assertion_of(&s).replace("ada@acme.test", "evil@acme.test");
                s.replace("</saml2p:Response>", &format!("{evil}</saml2p:Response>"))
            }),
        ),
        case(
            "XSW: signed assertion moved into the evil one's Signature Object",
            "assertions",
            tampered(|s| {
                let signed = assertion_of(&s);
                let evil = signed.replace("ada@acme.test", "evil@acme.test").replacen(
                    "</ds:Signature>",
                    &format!("<ds:Object>{signed}</ds:Object></ds:Signature>"),
                    1,
                );
                s.replace(&signed, &evil)
            }),
        ),
        case(
            "XSW: signed assertion hidden in an extension wrapper",
            "assertions",
            tampered(|s| {
                let signed = assertion_of(&s);
                let evil = signed.replace("ada@acme.test", "evil@acme.test");
                s.replace(
                    &signed,
                    &format!("<saml2p:Extensions>{signed}</saml2p:Extensions>{evil}"),
                )
            }),
        ),
        case(
            "assertion hidden in Advice",
            "assertions",
            tampered(|s| {
                let signed = assertion_of(&s);
                let evil = signed.replace("ada@acme.test", "evil@acme.test");
                s.replace(
                    "<saml2:Conditions",
                    &format!("<saml2:Advice>{evil}</saml2:Advice><saml2:Conditions"),
                )
            }),
        ),
        case(
            "doubled signed assertion (parser differential)",
            "assertions",
            tampered(|s| {
                let signed = assertion_of(&s);
                s.replace(&signed, &format!("{signed}{signed}"))
            }),
        ),
        case(
            "no assertion at all",
            "0 assertions",
            tampered(|s| {
                let signed = assertion_of(&s);
                s.replace(&signed, "")
            }),
        ),
        // 10, 14, 18, 19: what is signed, and by whom.
        case(
            "assertion changed after signing",
            "signature",
            tampered(|s| s.replace("ada@acme.test", "evil@acme.test")),
        ),
        case(
            "NameID changed after signing",
            "signature",
            tampered(|s| s.replace("00u1ada0lovelace", "00u1admin")),
        ),
        case(
            "no signature",
            "signature",
            |app: &TestApp, request_id: &str| {
                let xml = Spec::okta(app, "acme", request_id).xml();
                let start = xml.find("<ds:Signature").unwrap();
                let end = xml.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
                b64(&format!("{}{}", &xml[..start], &xml[end..]))
            },
        ),
        case(
            "empty signature template (never signed)",
            "signature",
            |app: &TestApp, request_id: &str| b64(&Spec::okta(app, "acme", request_id).xml()),
        ),
        case(
            "signed by a key not in the metadata, its certificate in KeyInfo",
            "signature",
            |app: &TestApp, request_id: &str| {
                b64(&sign_with(
                    &Spec::okta(app, "acme", request_id).xml(),
                    "attacker-key.pem",
                    "attacker-cert.pem",
                ))
            },
        ),
        case(
            "signature over another element than the assertion",
            "covers another element",
            changed_then_signed(|x| {
                let x = x.replacen(
                    "<saml2p:Status",
                    "<saml2p:Extensions ID=\"idsignedextension\"><x:Note xmlns:x=\"urn:example\">harmless</x:Note></saml2p:Extensions><saml2p:Status",
                    1,
                );
                let start =
                    x.find("<ds:Reference URI=\"#").unwrap() + "<ds:Reference URI=\"#".len();
                let end = start + x[start..].find('"').unwrap();
                format!("{}idsignedextension{}", &x[..start], &x[end..])
            }),
        ),
        // 20: weak algorithms.
        case(
            "RSA-SHA1 signature",
            "signature",
            signed(|s| s.algorithms = SHA1),
        ),
        // 21: InResponseTo.
        case(
            "InResponseTo rollcall never issued",
            "InResponseTo",
            signed(|s| s.in_response_to = "id-forged".into()),
        ),
        // 22–24: audience, recipient, destination.
        case(
            "wrong audience",
            "Audience",
            signed(|s| s.audience = "https://other-sp.example/metadata".into()),
        ),
        case(
            "another org's audience",
            "Audience",
            signed(|s| s.audience = s.audience.replace("/acme/", "/other/")),
        ),
        case(
            "no Conditions (so no audience)",
            "no audience",
            changed_then_signed(|x| {
                let start = x.find("<saml2:Conditions").unwrap();
                let end = x.find("</saml2:Conditions>").unwrap() + "</saml2:Conditions>".len();
                format!("{}{}", &x[..start], &x[end..])
            }),
        ),
        case(
            "Conditions without AudienceRestriction",
            "no audience",
            changed_then_signed(|x| {
                let start = x.find("<saml2:AudienceRestriction>").unwrap();
                let end = x.find("</saml2:AudienceRestriction>").unwrap()
                    + "</saml2:AudienceRestriction>".len();
                format!("{}{}", &x[..start], &x[end..])
            }),
        ),
        case(
            "wrong Recipient",
            "Recipient",
            signed(|s| s.recipient = "https://evil.example/acs".into()),
        ),
        case(
            "wrong Destination",
            "Destination",
            signed(|s| s.destination = "https://evil.example/acs".into()),
        ),
        // 25–26: time and subject confirmation.
        case(
            "expired beyond the skew",
            "expired",
            signed(|s| {
                s.not_on_or_after = Utc::now() - Duration::minutes(10);
            }),
        ),
        case(
            "not valid yet beyond the skew",
            "not valid until",
            signed(|s| {
                s.not_before = Utc::now() + Duration::minutes(10);
            }),
        ),
        case(
            "issued long ago",
            "expired",
            signed(|s| s.issue_instant = Utc::now() - Duration::hours(2)),
        ),
        case(
            "holder-of-key instead of bearer",
            "bearer",
            signed(|s| s.method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key".into()),
        ),
        // 27–28: issuer and status.
        case(
            "assertion issued by another IdP",
            "Issuer",
            signed(|s| s.issuer = "http://www.okta.com/exkOTHER".into()),
        ),
        case(
            "IdP status Responder",
            "status",
            signed(|s| s.status = "urn:oasis:names:tc:SAML:2.0:status:Responder".into()),
        ),
        // 13: comment injection.
        case(
            "comment in the NameID",
            "comment",
            changed_then_signed(|x| x.replace("00u1ada0lovelace", "00u1ada<!---->0lovelace")),
        ),
        case(
            "comment in the email attribute",
            "comment",
            changed_then_signed(|x| x.replace("ada@acme.test", "admin@evil.com<!---->.acme.test")),
        ),
        // 29: DOCTYPE, XXE, entity expansion.
        case(
            "XXE through a DOCTYPE",
            "DOCTYPE",
            |app: &TestApp, request_id: &str| {
                let xml = sign(&Spec::okta(app, "acme", request_id).xml());
                b64(&xml.replacen(
                    "?>",
                    "?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>",
                    1,
                ))
            },
        ),
        case("billion laughs", "DOCTYPE", |_: &TestApp, _: &str| {
            b64("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]><lolz>&lol2;</lolz>")
        }),
        // 30: encryption.
        case(
            "encrypted assertion in an unsigned response",
            "an encrypted one needs a signed response",
            tampered(|s| {
                let signed = assertion_of(&s);
                s.replace(&signed, "<saml2:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"/></saml2:EncryptedAssertion>")
            }),
        ),
        case(
            "encrypted assertion with RSA PKCS#1 v1.5 key transport",
            "PKCS#1 v1.5",
            tampered(|s| {
                let signed = assertion_of(&s);
                s.replace(&signed, "<saml2:EncryptedAssertion><xenc:EncryptedData xmlns:xenc=\"http://www.w3.org/2001/04/xmlenc#\"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#rsa-1_5\"/></xenc:EncryptedKey></xenc:EncryptedData></saml2:EncryptedAssertion>")
            }),
        ),
        // Not XML, or not base64.
        case("not base64", "base64", |_: &TestApp, _: &str| {
            "%%% not base64 %%%".into()
        }),
        case(
            "not a SAML response",
            "assertions",
            |_: &TestApp, _: &str| b64("<html>hello</html>"),
        ),
    ]
}

async fn attacks_are_refused_with_their_reason(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let cases = attacks();
    assert!(cases.len() >= 35, "the corpus has {} cases", cases.len());
    for case in &cases {
        let browser = Browser::new(&app);
        let (relay, request_id) = start(&browser, "acme", connection).await;
        let response = (case.response)(&app, &request_id);
        let r = post_acs(&browser, "acme", &response, Some(&relay)).await;
        assert!(
            r.status == StatusCode::FORBIDDEN,
            "{}: {} {}",
            case.name,
            r.status,
            r.body
        );
        // The person sees a short message and a reference, never the reason's details.
        assert!(r.body.contains("reference"), "{}: {}", case.name, r.body);
        assert!(!r.body.contains("xmlsec"), "{}", case.name);
        let event = last_event(&app, "acme", &admin).await;
        assert_eq!(
            event["action"], "sso.login_failed",
            "{}: {event}",
            case.name
        );
        let reason = event["after"]["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(case.reason),
            "{}: the reason {reason:?} does not say {:?}",
            case.name,
            case.reason
        );
    }
    // Nobody got in.
    let r = app.get("/api/v1/orgs/acme/members", &admin).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1, "{}", r.body);

    // Unsolicited responses, and requests of another org or already used.
    let browser = Browser::new(&app);
    let (_, request_id) = start(&browser, "acme", connection).await;
    let good = b64(&sign(&Spec::okta(&app, "acme", &request_id).xml()));
    // Responses bound to no sign-in of this org that rollcall started are refused and
    // logged; they do not reach the org's audit trail (anyone can post them).
    let quiet = last_event(&app, "acme", &admin).await;
    let r = post_acs(&browser, "acme", &good, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (other_admin, other_connection) = okta_org(&app, "other").await;
    let (other_relay, _) = start(&browser, "other", other_connection).await;
    let r = post_acs(&browser, "acme", &good, Some(&other_relay)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(last_event(&app, "acme", &admin).await, quiet);
    let _ = other_admin;
    let r = post_acs(
        &browser,
        "acme",
        &good,
        Some("a-relay-state-rollcall-never-made"),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // A request that expired.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    match &app.store {
        rollcall::store::Store::Sqlite(pool) => {
            sqlx::query("UPDATE saml_requests SET expires_at = $1 WHERE request_id = $2")
                .bind(Utc::now() - Duration::minutes(1))
                .bind(&request_id)
                .execute(pool)
                .await
                .unwrap();
        }
        rollcall::store::Store::Postgres(pool) => {
            sqlx::query("UPDATE saml_requests SET expires_at = $1 WHERE request_id = $2")
                .bind(Utc::now() - Duration::minutes(1))
                .bind(&request_id)
                .execute(pool)
                .await
                .unwrap();
        }
    }
    let r = post_acs(
        &browser,
        "acme",
        &b64(&sign(&Spec::okta(&app, "acme", &request_id).xml())),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("expired"), "{}", r.body);
    // Oversize bodies are refused unread.
    let big = "A".repeat(300 * 1024);
    let r = post_acs(&browser, "acme", &big, Some(&relay)).await;
    assert!(r.status == StatusCode::PAYLOAD_TOO_LARGE, "{}", r.status);
    app.stop().await;
}

/// A second rollcall instance on the same database, behind the same public URL (as behind a
/// load balancer). Returns its address.
async fn second_instance(app: &TestApp) -> String {
    let store = rollcall::store::Store::connect(&app.config.database_url)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = rollcall::state::AppState::new(store, app.config.clone()).unwrap();
    tokio::spawn(rollcall::server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    addr.to_string()
}

async fn a_replayed_assertion_is_refused(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    // The same assertion ID again, even for a new request (as an IdP or a thief replaying
    // a captured assertion would need): refused, wherever it is checked, since the record
    // is in the shared database.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let mut again = Spec::okta(&app, "acme", &request_id);
    again.assertion_id = spec.assertion_id.clone();
    let r = post_acs(&browser, "acme", &b64(&sign(&again.xml())), Some(&relay)).await;
    refused_because(&app, &admin, &r, "replay").await;

    // Two instances sharing the database: a sign-in started on one finishes on the other,
    // and its assertion replayed on the first is refused there.
    let other = second_instance(&app).await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(
        &browser.via(&other),
        "acme",
        &b64(&sign(&spec.xml())),
        Some(&relay),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "finished on the second instance: {}",
        r.body
    );
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let mut again = Spec::okta(&app, "acme", &request_id);
    again.assertion_id = spec.assertion_id.clone();
    let r = post_acs(&browser, "acme", &b64(&sign(&again.xml())), Some(&relay)).await;
    refused_because(&app, &admin, &r, "replay").await;
    app.stop().await;
}

async fn metadata_and_settings_are_checked(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let browser = Browser::new(&app);
    let r = browser.get("/saml/acme/metadata").await;
    assert_eq!(r.status, StatusCode::OK);
    let base = app.config.public_base_url.trim_end_matches('/');
    assert!(
        r.body
            .contains(&format!("entityID=\"{base}/saml/acme/metadata\"")),
        "{}",
        r.body
    );
    assert!(
        r.body
            .contains(&format!("Location=\"{base}/saml/acme/acs\"")),
        "{}",
        r.body
    );
    assert_eq!(r.headers["content-type"], "application/samlmetadata+xml");

    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap();
    let start = metadata.find("<md:KeyDescriptor").unwrap();
    let end = metadata.find("</md:KeyDescriptor>").unwrap() + "</md:KeyDescriptor>".len();
    let unsigned = format!("{}{}", &metadata[..start], &metadata[end..]);
    for (settings, says) in [
        (
            json!({"idp_metadata_xml": unsigned}),
            "no signing certificate",
        ),
        (
            json!({"idp_metadata_xml": "<not metadata"}),
            "not SAML metadata",
        ),
        (
            json!({"idp_metadata_xml": format!("<!DOCTYPE x>{metadata}")}),
            "DOCTYPE",
        ),
        (
            json!({"idp_metadata_xml": metadata, "clock_skew_seconds": 86400}),
            "clock_skew_seconds",
        ),
        (
            json!({"idp_metadata_xml": metadata, "sign_everything": true}),
            "unknown field",
        ),
    ] {
        let r = app
            .post(
                "/api/v1/orgs/acme/connections",
                &admin.token,
                json!({"kind": "saml", "name": "Okta", "settings": settings}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{says}: {}", r.body);
        assert!(r.body.to_string().contains(says), "{says}: {}", r.body);
    }
    // A connection without metadata yet cannot start a sign-in; the page says so plainly.
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta"}),
        )
        .await;
    let id = r.body["id"].as_i64().unwrap();
    let r = browser
        .get(&format!("/saml/acme/login?connection={id}"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.body.contains("not set up correctly"), "{}", r.body);
    let r = browser.get("/saml/nosuchorg/login").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Okta signs the response, the assertion, or both, as the admin chooses: a signature over
/// the whole response covers its assertion too.
async fn a_signed_response_covers_its_assertion(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let response_signed = response_level(&spec, &spec.xml());
    let r = post_acs(
        &browser,
        "acme",
        &b64(&sign(&response_signed)),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);

    // The same, with the assertion changed after the response was signed: refused.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let signed = sign(&response_level(&spec, &spec.xml()));
    let forged = signed.replace("ada@acme.test", "evil@acme.test");
    let r = post_acs(&browser, "acme", &b64(&forged), Some(&relay)).await;
    refused_because(&app, &admin, &r, "signature").await;
    app.stop().await;
}

async fn idp_initiated_sign_in_only_where_a_connection_opts_in(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let unsolicited = |app: &TestApp| {
        let xml = Spec::okta(app, "acme", "none").xml();
        b64(&sign(&xml.replace(" InResponseTo=\"none\"", "")))
    };
    let browser = Browser::new(&app);
    let r = post_acs(&browser, "acme", &unsolicited(&app), None).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "off by default: {}",
        r.body
    );

    let r = app
        .get(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin,
        )
        .await;
    let mut settings = r.body["settings"].clone();
    settings["allow_idp_initiated"] = true.into();
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin,
            json!({"settings": settings}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = post_acs(&browser, "acme", &unsolicited(&app), Some("/projects")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/projects");
    assert_eq!(browser.get("/api/v1/me").await.status, StatusCode::OK);

    // A response that answers some request is not taken as IdP-initiated.
    let solicited = b64(&sign(&Spec::okta(&app, "acme", "id-somebody-elses").xml()));
    let before = last_event(&app, "acme", &admin).await;
    let r = post_acs(&Browser::new(&app), "acme", &solicited, None).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    // Neither bound to a sign-in rollcall started nor verified: logged, not audited.
    assert_eq!(last_event(&app, "acme", &admin).await, before);
    // Nor is an absolute RelayState followed anywhere.
    let r = post_acs(
        &Browser::new(&app),
        "acme",
        &unsolicited(&app),
        Some("https://evil.example/"),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/");
    app.stop().await;
}

/// Anyone can post to an ACS. Junk that answers no sign-in rollcall started never writes
/// to the org's audit trail, and one address gets `http.sign_in_starts_per_minute` posts a
/// minute; an IdP's error response says what the IdP said.
async fn unauthenticated_posts_cannot_flood_the_audit_trail(backend: Backend) {
    let app = TestApp::spawn_with(&backend, |c| c.http.sign_in_starts_per_minute = 10).await;
    let (admin, _) = okta_org(&app, "acme").await;
    let events = || async {
        app.get("/api/v1/orgs/acme/audit?limit=200", &admin)
            .await
            .body["data"]
            .as_array()
            .unwrap()
            .len()
    };
    let before = events().await;
    let junk = b64("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>");
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let r = post_acs(
            &Browser::new(&app),
            "acme",
            &junk,
            Some("made-up-relay-state"),
        )
        .await;
        statuses.push(r.status);
    }
    assert_eq!(events().await, before, "nothing audited");
    assert!(
        statuses[..5].iter().all(|s| *s == StatusCode::FORBIDDEN),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    app.stop().await;
}

/// Okta reports "user not assigned to the app" as a signed Response with a Requester or
/// Responder status and no assertion: an IdP error, said as the IdP said it.
async fn an_idp_error_response_says_what_the_idp_said(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let mut spec = Spec::okta(&app, "acme", &request_id);
    spec.status = "urn:oasis:names:tc:SAML:2.0:status:Requester".into();
    let xml = spec.xml();
    let start = xml.find("<saml2:Assertion").unwrap();
    let end = xml.find("</saml2:Assertion>").unwrap() + "</saml2:Assertion>".len();
    let xml = format!(
        "{}{}",
        &xml[..start],
        &xml[end..]
    )
    .replace(
        "<saml2p:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\"/>",
        "<saml2p:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Requester\"><saml2p:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:RequestDenied\"/></saml2p:StatusCode><saml2p:StatusMessage>User is not assigned to this application</saml2p:StatusMessage>",
    );
    let r = post_acs(&browser, "acme", &b64(&xml), Some(&relay)).await;
    assert!(
        r.body.contains("User is not assigned to this application"),
        "{}",
        r.body
    );
    refused_because(&app, &admin, &r, "IdP status Requester, second-level RequestDenied, message \"User is not assigned to this application\"").await;
    let reason = last_event(&app, "acme", &admin).await["after"]["reason"].to_string();
    assert!(!reason.contains("signature wrapping"), "{reason}");
    app.stop().await;
}

/// The ACS is a cross-site POST that carries no session cookie: the session of the browser
/// that started the sign-in is recorded then, and ended when the new one starts.
async fn a_new_sign_in_replaces_the_browsers_session(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection) = okta_org(&app, "acme").await;
    app.add_member("acme", "someone@acme.test", false).await;
    app.set_password("someone@acme.test", crate::web::GOOD_PASSWORD)
        .await;
    let browser = Browser::new(&app);
    browser
        .sign_in("someone@acme.test", crate::web::GOOD_PASSWORD)
        .await;
    let me = browser.get("/api/v1/me").await;
    assert!(me.body.contains("someone@acme.test"), "{}", me.body);
    let old = browser_session(&app, &browser);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let r = app
        .client
        .get(app.url("/api/v1/me"))
        .header("cookie", format!("rollcall_session={old}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the earlier session ended"
    );
    assert!(browser
        .get("/api/v1/me")
        .await
        .body
        .contains("ada@acme.test"));
    app.stop().await;
}

/// Signatures are verified before any write transaction; what must happen once is a
/// conditional write after it. The same response posted several times at once passes once.
async fn a_response_posted_twice_at_once_is_used_once(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (_, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let response = b64(&sign(&spec.xml()));
    let form = [
        ("SAMLResponse", response.as_str()),
        ("RelayState", relay.as_str()),
    ];
    let posts = (0..4).map(|_| browser.post("/saml/acme/acs", &form));
    let answers = futures::future::join_all(posts).await;
    let passed = answers
        .iter()
        .filter(|r| r.status == StatusCode::SEE_OTHER)
        .count();
    assert_eq!(
        passed,
        1,
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(answers.iter().all(|r| r.status == StatusCode::SEE_OTHER
        || r.status == StatusCode::FORBIDDEN
        || r.status == StatusCode::BAD_REQUEST));
    app.stop().await;
}

/// Login CSRF: an attacker starts a sign-in in their own browser and has a victim's browser
/// post the IdP's response for the attacker's account. The response verifies, but the
/// sign-in finishes only in the browser holding the binding cookie from the start: the
/// victim is not signed in as the attacker, and the audit trail says why.
async fn a_saml_response_signs_in_only_the_browser_that_started_it(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let attacker = Browser::new(&app);
    let (relay, request_id) = start(&attacker, "acme", connection).await;
    let mut spec = Spec::okta(&app, "acme", &request_id);
    spec.name_id = "00u1mallory".into();
    spec.email = "mallory@acme.test".into();
    let response = b64(&sign(&spec.xml()));
    let victim = Browser::new(&app);
    let r = victim
        .post(
            "/saml/acme/acs",
            &[
                ("SAMLResponse", response.as_str()),
                ("RelayState", relay.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let finish = r.location().to_string();
    assert!(finish.starts_with("/saml/acme/finish?token="), "{finish}");
    assert!(
        r.headers.get("set-cookie").is_none(),
        "no session at the ACS"
    );
    let r = victim.get(&finish).await;
    refused_because(&app, &admin, &r, "not the one that started it").await;
    assert!(
        !victim.get("/api/v1/me").await.body.contains("mallory"),
        "the victim is not signed in as the attacker"
    );
    // The finish link is single use: not even the attacker's own browser can use it now.
    let r = attacker.get(&finish).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);

    // The browser that started a sign-in finishes it, once.
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = browser
        .post(
            "/saml/acme/acs",
            &[
                ("SAMLResponse", b64(&sign(&spec.xml())).as_str()),
                ("RelayState", relay.as_str()),
            ],
        )
        .await;
    let finish = r.location().to_string();
    let r = browser.get(&finish).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(browser
        .get("/api/v1/me")
        .await
        .body
        .contains("ada@acme.test"));
    let r = browser.get(&finish).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    app.stop().await;
}

/// The browser's session secret, as its cookie holds it.
fn browser_session(app: &TestApp, browser: &Browser) -> String {
    let cookies = browser.cookies_for(&app.url("/"));
    cookies
        .split(';')
        .map(str::trim)
        .find_map(|c| c.strip_prefix("rollcall_session="))
        .expect("a session cookie")
        .to_string()
}

async fn connection_shows_its_certificates_and_warnings(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let r = app
        .get(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin,
        )
        .await;
    let idp = &r.body["settings"]["idp"];
    assert_eq!(idp["entity_id"], ISSUER, "{idp}");
    assert_eq!(idp["certificates"].as_array().unwrap().len(), 1, "{idp}");
    assert!(idp["certificates"][0]["subject"]
        .as_str()
        .unwrap()
        .contains("rollcall test Okta IdP"));
    assert_eq!(
        idp["warnings"],
        json!([]),
        "the fixture certificate is valid for years"
    );

    // Rotation: metadata with the new certificate beside the old one; the new one expires
    // soon, which the status says.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("k.pem");
    let cert = dir.path().join("c.pem");
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "10", "-subj", "/CN=soon",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success());
    let pem = std::fs::read_to_string(&cert).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap();
    let second = format!(
        "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>{body}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>"
    );
    let rotated = metadata.replacen("<md:NameIDFormat>", &second, 1);
    let r = app
        .patch(
            &format!("/api/v1/orgs/acme/connections/{connection}"),
            &admin,
            json!({"settings": {"idp_metadata_xml": rotated}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let idp = &r.body["settings"]["idp"];
    assert_eq!(idp["certificates"].as_array().unwrap().len(), 2, "{idp}");
    assert!(
        idp["warnings"][0]
            .as_str()
            .unwrap()
            .contains("expires within 30 days"),
        "{idp}"
    );

    // Responses signed with either certificate are accepted during the rotation.
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let key = key.to_str().unwrap().to_string();
    let cert = cert.to_str().unwrap().to_string();
    let r = post_acs(
        &browser,
        "acme",
        &b64(&sign_with(&spec.xml(), &key, &cert)),
        Some(&relay),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    app.stop().await;
}

/// An invitee whose domain signs in through Okta is sent there by the invitation page, and
/// comes back a member with what the invitation gave, without any access grant.
async fn an_invitation_continues_through_okta(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap();
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta", "settings": {"idp_metadata_xml": metadata}}),
        )
        .await;
    let connection = r.body["id"].as_i64().unwrap();
    rollcall::operator::verify_domain(&app.store, "acme", "acme.test")
        .await
        .unwrap();
    let r = app
        .post(
            "/api/v1/orgs/acme/invitations",
            &admin.token,
            json!({"emails": ["ada@acme.test"], "is_admin": true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    app.deliver_mail().await;
    let link = crate::harness::link_in(&app.smtp.received()[0].data);
    let invite_path = link[link.find("/invite/").unwrap()..].to_string();

    let browser = Browser::new(&app);
    let page = browser.get(&link).await;
    // return_to is URL-encoded in the link, whatever characters it holds.
    let encoded = invite_path.replace('/', "%2F");
    let login = format!("/saml/acme/login?connection={connection}&amp;return_to={encoded}");
    assert!(page.body.contains(&login), "{}", page.body);
    let r = browser.get(&login.replace("&amp;", "&")).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let location = reqwest::Url::parse(r.location()).unwrap();
    let relay = location
        .query_pairs()
        .find(|(k, _)| k == "RelayState")
        .unwrap()
        .1
        .to_string();
    let request_id = request_id_of(
        &location
            .query_pairs()
            .find(|(k, _)| k == "SAMLRequest")
            .unwrap()
            .1,
    );
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(&browser, "acme", &b64(&sign(&spec.xml())), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), invite_path);
    let page = browser.get(&invite_path).await;
    assert!(
        page.body.contains("You are a member of acme now"),
        "{}",
        page.body
    );
    let r = app.get("/api/v1/orgs/acme/members", &admin.token).await;
    let ada = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["user"]["email"] == "ada@acme.test")
        .cloned()
        .expect("Ada is a member");
    assert_eq!(ada["is_admin"], true, "the invitation's admin flag applies");
    assert_eq!(ada["source"], "invitation");
    app.stop().await;
}

/// Okta's metadata URL, served locally: what it answers can be changed, or made to fail.
async fn metadata_server() -> (String, std::sync::Arc<std::sync::Mutex<Option<String>>>) {
    let served = std::sync::Arc::new(std::sync::Mutex::new(Some(
        std::fs::read_to_string(fixture("metadata.xml")).unwrap(),
    )));
    let shared = served.clone();
    let app = axum::Router::new().route(
        "/app/exk1rollcall0test/sso/saml/metadata",
        axum::routing::get(move || {
            let shared = shared.clone();
            async move {
                match shared.lock().unwrap().clone() {
                    Some(xml) => (StatusCode::OK, xml),
                    None => (StatusCode::INTERNAL_SERVER_ERROR, "down".to_string()),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (
        format!("http://{addr}/app/exk1rollcall0test/sso/saml/metadata"),
        served,
    )
}

async fn metadata_by_url_is_fetched_and_refreshed(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let admin = app.bootstrap("acme", "admin@acme.test").await;
    let (url, served) = metadata_server().await;
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta", "settings": {"idp_metadata_url": url}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let connection = r.body["id"].as_i64().unwrap();
    assert_eq!(r.body["settings"]["idp"]["entity_id"], ISSUER, "{}", r.body);
    assert!(r.body["settings"]["idp_metadata_fetched_at"].is_string());
    let r = app
        .post(
            &format!("/api/v1/orgs/acme/connections/{connection}/grants"),
            &admin.token,
            json!({"match": {"kind": "everyone"}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let path = format!("/api/v1/orgs/acme/connections/{connection}");

    // The IdP adds a certificate: the next refresh takes it.
    let rotated = served.lock().unwrap().clone().unwrap().replacen(
        "<md:NameIDFormat>",
        &format!(
            "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:NameIDFormat>",
            std::fs::read_to_string(fixture("attacker-cert.pem"))
                .unwrap()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>()
        ),
        1,
    );
    *served.lock().unwrap() = Some(rotated);
    let state = rollcall::state::AppState::new(app.store.clone(), app.config.clone()).unwrap();
    assert_eq!(
        rollcall::connections::saml_metadata::refresh_all(&state)
            .await
            .unwrap(),
        1
    );
    let r = app.get(&path, &admin.token).await;
    assert_eq!(
        r.body["settings"]["idp"]["certificates"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The IdP is down, or serves metadata without a signing certificate: the last good
    // copy stays in use, and the connection's status says why.
    *served.lock().unwrap() = None;
    assert_eq!(
        rollcall::connections::saml_metadata::refresh_all(&state)
            .await
            .unwrap(),
        0
    );
    let r = app.get(&path, &admin.token).await;
    let idp = &r.body["settings"]["idp"];
    assert_eq!(idp["certificates"].as_array().unwrap().len(), 2, "{idp}");
    assert!(
        idp["warnings"].to_string().contains("last refresh"),
        "{idp}"
    );
    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let response = b64(&sign(&Spec::okta(&app, "acme", &request_id).xml()));
    let r = post_acs(&browser, "acme", &response, Some(&relay)).await;
    assert_eq!(
        r.status,
        StatusCode::SEE_OTHER,
        "the last good copy signs people in: {}",
        r.body
    );

    // A URL that does not serve usable metadata is refused when the admin gives it.
    let r = app
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Broken", "settings": {"idp_metadata_url": url}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    app.stop().await;

    // Without the operator's allowance, private and loopback addresses are refused (SSRF).
    let strict = TestApp::spawn_with(&backend, |c| c.saml.allow_private_addresses = false).await;
    let admin = strict.bootstrap("acme", "admin@acme.test").await;
    *served.lock().unwrap() = Some(std::fs::read_to_string(fixture("metadata.xml")).unwrap());
    let r = strict
        .post(
            "/api/v1/orgs/acme/connections",
            &admin.token,
            json!({"kind": "saml", "name": "Okta", "settings": {"idp_metadata_url": url}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert!(r.body.to_string().contains("not https"), "{}", r.body);
    strict.stop().await;
}

async fn authn_requests_are_signed_when_configured(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let metadata = browser.get("/saml/acme/metadata").await.body;
    assert!(
        metadata.contains("AuthnRequestsSigned=\"false\""),
        "{metadata}"
    );
    let certificate = metadata
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|rest| rest.split("</ds:X509Certificate>").next())
        .expect("the SP certificate in the metadata")
        .to_string();
    // The key pair is made once and kept.
    assert!(browser
        .get("/saml/acme/metadata")
        .await
        .body
        .contains(&certificate));

    let path = format!("/api/v1/orgs/acme/connections/{connection}");
    let mut settings = app.get(&path, &admin).await.body["settings"].clone();
    settings["sign_requests"] = true.into();
    let r = app
        .patch(&path, &admin, json!({"settings": settings}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(browser
        .get("/saml/acme/metadata")
        .await
        .body
        .contains("AuthnRequestsSigned=\"true\""));

    let r = browser
        .get(&format!("/saml/acme/login?connection={connection}"))
        .await;
    let url = reqwest::Url::parse(r.location()).unwrap();
    assert!(
        url.query_pairs()
            .any(|(k, v)| k == "SigAlg" && v.ends_with("rsa-sha256")),
        "{url}"
    );
    let der = base64::engine::general_purpose::STANDARD
        .decode(certificate)
        .unwrap();
    let verifier =
        samael::crypto::UrlVerifier::from_x509(&samael::crypto::CertificateDer::from(der)).unwrap();
    assert!(
        verifier.verify_signed_request_url(&url).unwrap(),
        "the signature verifies with the published certificate"
    );
    // Changing one byte of the request breaks it.
    let tampered =
        reqwest::Url::parse(&url.as_str().replacen("RelayState=", "RelayState=x", 1)).unwrap();
    assert!(!verifier
        .verify_signed_request_url(&tampered)
        .unwrap_or(false));

    // Signing does not change the sign-in itself.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let response = b64(&sign(&Spec::okta(&app, "acme", &request_id).xml()));
    let r = post_acs(&browser, "acme", &response, Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    app.stop().await;
}

/// The org's SP certificate as PEM, from its metadata.
async fn sp_certificate_pem(browser: &Browser, org: &str) -> String {
    let metadata = browser.get(&format!("/saml/{org}/metadata")).await.body;
    let b64 = metadata
        .split("<ds:X509Certificate>")
        .nth(1)
        .and_then(|rest| rest.split("</ds:X509Certificate>").next())
        .unwrap()
        .to_string();
    let lines: Vec<String> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// An Okta response whose assertion is encrypted to `certificate_pem` (xmlsec1, AES-128-CBC
/// with an RSA-OAEP key transport), and whose Response carries the signature template.
fn encrypted_response(spec: &Spec, certificate_pem: &str) -> String {
    let response = response_level(spec, &spec.xml());
    let assertion = assertion_of(&response);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("assertion.xml");
    let encryption = dir.path().join("template.xml");
    let cert = dir.path().join("sp.pem");
    let out = dir.path().join("encrypted.xml");
    std::fs::write(&data, format!("<?xml version=\"1.0\"?>{assertion}")).unwrap();
    std::fs::write(&cert, certificate_pem).unwrap();
    std::fs::write(&encryption, r#"<?xml version="1.0"?><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" Type="http://www.w3.org/2001/04/xmlenc#Element"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/><ds:KeyInfo xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"/><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue/></xenc:CipherData></xenc:EncryptedData>"#).unwrap();
    let done = Command::new("xmlsec1")
        .arg("--encrypt")
        .arg("--pubkey-cert-pem")
        .arg(&cert)
        .args(["--session-key", "aes-128"])
        .arg("--xml-data")
        .arg(&data)
        .arg("--output")
        .arg(&out)
        .arg(&encryption)
        .output()
        .unwrap();
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let encrypted = std::fs::read_to_string(&out).unwrap();
    let encrypted = encrypted
        .trim_start_matches("<?xml version=\"1.0\"?>")
        .trim();
    response.replace(
        &assertion,
        &format!("<saml2:EncryptedAssertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">{encrypted}</saml2:EncryptedAssertion>"),
    )
}

async fn encrypted_assertions_decrypt_inside_a_signed_response(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);
    let certificate = sp_certificate_pem(&browser, "acme").await;

    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let r = post_acs(
        &browser,
        "acme",
        &b64(&sign(&encrypted_response(&spec, &certificate))),
        Some(&relay),
    )
    .await;

    if r.status != StatusCode::SEE_OTHER {
        panic!("{}", last_event(&app, "acme", &admin).await);
    }
    let me: serde_json::Value =
        serde_json::from_str(&browser.get("/api/v1/me").await.body).unwrap();
    assert_eq!(me["user"]["email"], "ada@acme.test");

    // Encrypted but not signed: never decrypted.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let unsigned = encrypted_response(&Spec::okta(&app, "acme", &request_id), &certificate);
    let r = post_acs(&browser, "acme", &b64(&unsigned), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let reason = last_event(&app, "acme", &admin).await["after"]["reason"].clone();
    assert!(reason.as_str().unwrap().contains("signature"), "{reason}");

    // Encrypted to another key: does not decrypt.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let other = std::fs::read_to_string(fixture("attacker-cert.pem")).unwrap();
    let wrong = sign(&encrypted_response(
        &Spec::okta(&app, "acme", &request_id),
        &other,
    ));
    let r = post_acs(&browser, "acme", &b64(&wrong), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    let reason = last_event(&app, "acme", &admin).await["after"]["reason"].clone();
    assert!(reason.as_str().unwrap().contains("decrypt"), "{reason}");
    app.stop().await;
}

async fn single_logout_ends_the_session_and_tells_okta(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let browser = Browser::new(&app);

    // Without a logout endpoint in the IdP's metadata, signing out ends rollcall's session.
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let response = b64(&sign(&Spec::okta(&app, "acme", &request_id).xml()));
    assert_eq!(
        post_acs(&browser, "acme", &response, Some(&relay))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let csrf = browser.get("/login").await.csrf();
    let r = browser.post("/saml/acme/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert_eq!(r.location(), "/login");
    assert_eq!(
        browser.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    // With one, the browser goes on to Okta with a signed LogoutRequest for its session.
    let slo =
        "https://rollcall-test.okta.com/app/rollcall-test_rollcall_1/exk1rollcall0test/slo/saml";
    let metadata = std::fs::read_to_string(fixture("metadata.xml")).unwrap().replacen(
        "<md:SingleSignOnService",
        &format!("<md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"{slo}\"/><md:SingleSignOnService"),
        1,
    );
    let path = format!("/api/v1/orgs/acme/connections/{connection}");
    let r = app
        .patch(
            &path,
            &admin,
            json!({"settings": {"idp_metadata_xml": metadata}}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let spec = Spec::okta(&app, "acme", &request_id);
    let response = b64(&sign(&spec.xml()));
    assert_eq!(
        post_acs(&browser, "acme", &response, Some(&relay))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(browser.get("/api/v1/me").await.status, StatusCode::OK);
    // A cross-site form cannot sign anyone out.
    let r = browser
        .post_from(
            "/saml/acme/logout",
            "https://evil.example",
            &[("csrf", "forged")],
        )
        .await;
    assert_ne!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.get("/api/v1/me").await.status, StatusCode::OK);

    let csrf = browser.get("/login").await.csrf();
    let r = browser.post("/saml/acme/logout", &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let url = reqwest::Url::parse(r.location()).unwrap();
    assert!(url.as_str().starts_with(slo), "{url}");
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    assert!(
        param("SigAlg").is_some() && param("Signature").is_some(),
        "{url}"
    );
    let certificate = sp_certificate_pem(&browser, "acme").await;
    let verifier = samael::crypto::UrlVerifier::from_x509_cert_pem(&certificate).unwrap();
    assert!(verifier.verify_signed_request_url(&url).unwrap());
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(param("SAMLRequest").unwrap())
        .unwrap();
    let mut request = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut request)
        .unwrap();
    assert!(request.contains("LogoutRequest"), "{request}");
    assert!(request.contains(&spec.name_id), "{request}");
    assert!(
        request.contains(&spec.assertion_id),
        "the IdP's SessionIndex: {request}"
    );
    assert_eq!(
        browser.get("/api/v1/me").await.status,
        StatusCode::UNAUTHORIZED
    );

    // Okta sends the browser back; rollcall's session is already gone.
    let r = browser.get("/saml/acme/slo?SAMLResponse=anything").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/login");
    let metadata = browser.get("/saml/acme/metadata").await.body;
    assert!(metadata.contains("/saml/acme/slo"), "{metadata}");
    app.stop().await;
}

async fn sha1_and_attribute_names_are_the_admins_choice(backend: Backend) {
    let app = TestApp::spawn(&backend).await;
    let (admin, connection) = okta_org(&app, "acme").await;
    let path = format!("/api/v1/orgs/acme/connections/{connection}");
    let mut settings = app.get(&path, &admin).await.body["settings"].clone();
    settings["allow_sha1"] = true.into();
    // This IdP sends the email under a name of its own.
    settings["attributes"] = json!({"email": ["mailAddress"]});
    let r = app
        .patch(&path, &admin, json!({"settings": settings}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    let browser = Browser::new(&app);
    let (relay, request_id) = start(&browser, "acme", connection).await;
    let mut spec = Spec::okta(&app, "acme", &request_id);
    spec.algorithms = SHA1;
    let xml = spec
        .xml()
        .replace(
            "Name=\"urn:oid:1.2.840.113549.1.9.1\"",
            "Name=\"mailAddress\"",
        )
        .replace("ada@acme.test", "ada.custom@acme.test");
    let r = post_acs(&browser, "acme", &b64(&sign(&xml)), Some(&relay)).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let me: serde_json::Value =
        serde_json::from_str(&browser.get("/api/v1/me").await.body).unwrap();
    assert_eq!(me["user"]["email"], "ada.custom@acme.test");
    app.stop().await;
}

/// What the Okta stand-in answers an AuthnRequest with: a signed Okta response for the
/// rollcall at `base`, as the SAMLResponse form field.
pub(crate) fn okta_answer(base: &str, org: &str, request_id: &str) -> String {
    b64(&sign(&Spec::for_base(base, org, request_id).xml()))
}

/// The request ID in a Redirect-binding SAMLRequest parameter.
pub(crate) fn request_id_of(saml_request: &str) -> String {
    let deflated = base64::engine::general_purpose::STANDARD
        .decode(saml_request)
        .unwrap();
    let mut request = String::new();
    flate2::read::DeflateDecoder::new(&deflated[..])
        .read_to_string(&mut request)
        .unwrap();
    request
        .split("ID=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_string()
}

pub(crate) fn okta_metadata_with_sso(sso_url: &str) -> String {
    std::fs::read_to_string(fixture("metadata.xml"))
        .unwrap()
        .replace(
        "https://rollcall-test.okta.com/app/rollcall-test_rollcall_1/exk1rollcall0test/sso/saml",
        sso_url,
    )
}
