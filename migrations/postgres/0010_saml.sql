-- SAML sign-ins (PostgreSQL). Keep in step with ../sqlite/0010_saml.sql.

-- An AuthnRequest rollcall sent: its ID must come back as InResponseTo, once, before it
-- expires, to the org it was made for. Kept in the database so any instance can finish a
-- sign-in another one started.
CREATE TABLE saml_requests (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id        BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    request_id    TEXT NOT NULL,
    -- SHA-256 of the RelayState the browser carries back.
    relay_hash    TEXT NOT NULL,
    return_to     TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    consumed_at   TIMESTAMPTZ,
    CONSTRAINT saml_requests_request_id_key UNIQUE (request_id),
    CONSTRAINT saml_requests_relay_hash_key UNIQUE (relay_hash)
);

-- Assertions already used, until they expire: the same assertion is refused a second time,
-- on every instance sharing the database.
CREATE TABLE saml_assertions (
    connection_id BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    assertion_id  TEXT NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (connection_id, assertion_id)
);
CREATE INDEX saml_assertions_expiry_idx ON saml_assertions(expires_at);
