-- rollcall's SAML key pair per org (SQLite). Keep in step with ../postgres/0011_saml_sp_keys.sql.

-- Made on first use; the private key is sealed (ChaCha20-Poly1305) under the key outside the
-- database, like client secrets. The certificate is in the org's SP metadata.
CREATE TABLE saml_sp_keys (
    org_id             INTEGER PRIMARY KEY REFERENCES organizations(id) ON DELETE CASCADE,
    private_key_sealed TEXT NOT NULL,
    -- base64 DER
    certificate        TEXT NOT NULL,
    created_at         TEXT NOT NULL
);
