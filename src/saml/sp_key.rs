//! rollcall's own SAML key pair, one per org: made on first use, the private key sealed in
//! the database under the key outside it, the certificate published in the SP metadata.

use base64::Engine;
use openssl::pkey::{PKey, Private};
use samael::{
    crypto::CertificateDer,
    idp::{CertificateParams, IdentityProvider, KeyType, Rsa},
};

use crate::{browser::SignInFailure, state::AppState, store::saml};

pub struct SpKey {
    pub private_key: PKey<Private>,
    pub certificate: CertificateDer,
}

impl SpKey {
    pub fn certificate_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.certificate.der_data())
    }
}

fn broken(reason: String) -> SignInFailure {
    SignInFailure::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong on our side. Please try again.",
        reason,
    )
}

/// The org's key pair, made now if it has none.
pub async fn for_org(
    state: &AppState,
    org_id: i64,
    entity_id: &str,
) -> Result<SpKey, SignInFailure> {
    let mut tx = state.store.autocommit().await?;
    let found = saml::sp_key(&mut tx, org_id).await?;
    drop(tx);
    let (sealed, certificate) = match found {
        Some(pair) => pair,
        None => {
            let idp = IdentityProvider::generate_new(KeyType::Rsa(Rsa::Rsa2048))
                .map_err(|e| broken(format!("generating the SP key: {e:?}")))?;
            let certificate = idp
                .create_certificate(&CertificateParams {
                    common_name: entity_id,
                    issuer_name: entity_id,
                    days_until_expiration: 3650,
                })
                .map_err(|e| broken(format!("making the SP certificate: {e:?}")))?;
            let der = idp
                .export_private_key_der()
                .map_err(|e| broken(format!("exporting the SP key: {e:?}")))?;
            let b64 = base64::engine::general_purpose::STANDARD;
            let sealed = state.sealer.seal(&b64.encode(der));
            let mut tx = state.store.begin().await?;
            saml::insert_sp_key(
                &mut tx,
                org_id,
                &sealed,
                &b64.encode(certificate.der_data()),
            )
            .await?;
            // Another instance may have made one first: use what is stored.
            let pair = saml::sp_key(&mut tx, org_id)
                .await?
                .ok_or_else(|| broken("the SP key vanished".into()))?;
            tx.commit().await?;
            pair
        }
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let der = state
        .sealer
        .open(&sealed)
        .and_then(|k| b64.decode(k).ok())
        .ok_or_else(|| broken("the SP key cannot be opened with this secrets key".into()))?;
    let rsa = openssl::rsa::Rsa::private_key_from_der(&der)
        .map_err(|e| broken(format!("the SP key does not parse: {e}")))?;
    let private_key =
        PKey::from_rsa(rsa).map_err(|e| broken(format!("the SP key does not load: {e}")))?;
    let certificate = b64
        .decode(certificate)
        .map_err(|e| broken(format!("the SP certificate does not decode: {e}")))?;
    Ok(SpKey {
        private_key,
        certificate: CertificateDer::from(certificate),
    })
}
