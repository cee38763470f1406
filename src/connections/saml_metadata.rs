//! IdP metadata by URL: fetched when an admin gives the URL, and again periodically,
//! keeping the last good copy when a fetch fails or brings unusable metadata.

use chrono::Utc;
use serde_json::Value;

use super::saml::Settings;
use crate::{
    outbound::{self, Outbound},
    state::AppState,
    store::{self, connections},
};

/// Metadata documents are a few kilobytes; anything larger is refused.
const MAX_METADATA_BYTES: usize = 1024 * 1024;

/// Fetches and checks the metadata at `url`: https and no private address (unless the
/// operator allows them), no redirects, a size cap, a signing certificate.
pub async fn fetch(state: &AppState, url: &str) -> Result<String, String> {
    let allow_private = state.config.saml.allow_private_addresses;
    let target = Outbound::check(url, allow_private).map_err(|e| e.to_string())?;
    let response = state
        .outbound
        .client(allow_private)
        .get(target)
        .send()
        .await
        .map_err(|e| outbound::explain(url, &e).to_string())?;
    if !response.status().is_success() {
        return Err(format!("GET {url}: status {}", response.status()));
    }
    if response
        .content_length()
        .is_some_and(|n| n as usize > MAX_METADATA_BYTES)
    {
        return Err(format!("GET {url}: over {MAX_METADATA_BYTES} bytes"));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    if bytes.len() > MAX_METADATA_BYTES {
        return Err(format!("GET {url}: over {MAX_METADATA_BYTES} bytes"));
    }
    let xml = String::from_utf8(bytes.to_vec()).map_err(|_| format!("GET {url}: not UTF-8"))?;
    let check = Settings {
        idp_metadata_xml: Some(xml.clone()),
        ..Settings::from_value(&serde_json::json!({}))?
    };
    check
        .idp()
        .map_err(|e| format!("metadata from {url}: {e}"))?;
    Ok(xml)
}

/// Before an admin's settings are checked: when they name a metadata URL that is new (or
/// there is no metadata yet), fetch it now, so a bad URL is refused while the admin waits.
pub async fn fill(
    state: &AppState,
    input: &mut Value,
    previous: Option<&Value>,
) -> Result<(), String> {
    let Some(url) = input
        .get("idp_metadata_url")
        .and_then(Value::as_str)
        .map(str::to_string)
    else {
        return Ok(());
    };
    let previous_url = previous
        .and_then(|p| p.get("idp_metadata_url"))
        .and_then(Value::as_str);
    let has_xml = input.get("idp_metadata_xml").is_some_and(|x| x.is_string());
    if previous_url == Some(url.as_str()) && has_xml {
        return Ok(());
    }
    let xml = fetch(state, &url).await?;
    if let Some(object) = input.as_object_mut() {
        object.insert("idp_metadata_xml".into(), xml.into());
        object.insert(
            "idp_metadata_fetched_at".into(),
            Utc::now().to_rfc3339().into(),
        );
        object.remove("idp_metadata_refresh_error");
    }
    Ok(())
}

/// Fetches the metadata of every SAML connection that has a URL. Returns how many copies
/// changed. A failure is recorded on the connection (its status shows it) and the last good
/// copy stays in use.
pub async fn refresh_all(state: &AppState) -> Result<usize, store::Error> {
    let targets: Vec<(i64, i64, String)> = {
        let mut tx = state.store.read().await?;
        connections::all_of_kind(&mut tx, connections::Kind::Saml)
            .await?
            .into_iter()
            .filter_map(|c| {
                let url = c.settings.0.get("idp_metadata_url")?.as_str()?.to_string();
                Some((c.org_id, c.id, url))
            })
            .collect()
    };
    let mut changed = 0;
    for (org_id, id, url) in targets {
        let fetched = fetch(state, &url).await;
        let mut tx = state.store.begin().await?;
        // Read again inside the write: an admin may have changed the settings meanwhile.
        let Ok(current) = connections::require(&mut tx, org_id, id).await else {
            continue;
        };
        let mut settings = current.settings.0.clone();
        if settings.get("idp_metadata_url").and_then(Value::as_str) != Some(url.as_str()) {
            continue;
        }
        let Some(object) = settings.as_object_mut() else {
            continue;
        };
        match fetched {
            Ok(xml) => {
                if object.get("idp_metadata_xml").and_then(Value::as_str) != Some(xml.as_str()) {
                    changed += 1;
                    tracing::info!(connection = id, %url, "SAML metadata refreshed with a new copy");
                }
                object.insert("idp_metadata_xml".into(), xml.into());
                object.insert(
                    "idp_metadata_fetched_at".into(),
                    Utc::now().to_rfc3339().into(),
                );
                object.remove("idp_metadata_refresh_error");
            }
            Err(error) => {
                tracing::warn!(connection = id, %url, %error, "SAML metadata refresh failed; keeping the last good copy");
                object.insert("idp_metadata_refresh_error".into(), error.into());
            }
        }
        connections::update(
            &mut tx,
            org_id,
            id,
            connections::Changes {
                name: None,
                enabled: None,
                settings: Some(settings),
            },
        )
        .await?;
        tx.commit().await?;
    }
    Ok(changed)
}

/// Refreshes metadata every `saml.metadata_refresh_minutes` until `stop` turns true.
pub async fn run_refresher(state: AppState, mut stop: tokio::sync::watch::Receiver<bool>) {
    let minutes = state.config.saml.metadata_refresh_minutes;
    if minutes == 0 {
        return;
    }
    let period = std::time::Duration::from_secs(minutes * 60);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(period) => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        if let Err(err) = refresh_all(&state).await {
            tracing::warn!(%err, "SAML metadata refresh pass failed");
        }
    }
}
