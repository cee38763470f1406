-- Provisioning core (SQLite). Keep in step with ../postgres/0002_provisioning.sql.

-- Who made a member admin: 'manual' (an admin, bootstrap or an invitation) or 'grant' (an
-- access grant, taken back when no grant gives it any more). NULL when not admin.
ALTER TABLE memberships ADD COLUMN admin_source TEXT CHECK (admin_source IN ('manual', 'grant'));
UPDATE memberships SET admin_source = 'manual' WHERE is_admin;

CREATE TABLE connections (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kind            TEXT NOT NULL CHECK (kind IN ('saml', 'oidc')),
    name            TEXT NOT NULL,
    name_normalized TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL DEFAULT TRUE,
    -- Protocol settings, owned by the SAML and OIDC front doors.
    settings        TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CONSTRAINT connections_org_name_key UNIQUE (org_id, name_normalized)
);
CREATE INDEX connections_org_idx ON connections(org_id);

CREATE TABLE domains (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    domain             TEXT NOT NULL,
    verification_token TEXT NOT NULL,
    verified_at        TEXT,
    verified_by        TEXT CHECK (verified_by IN ('dns', 'operator')),
    created_at         TEXT NOT NULL,
    CONSTRAINT domains_org_domain_key UNIQUE (org_id, domain)
);
-- A verified domain belongs to one org only.
CREATE UNIQUE INDEX domains_verified_key ON domains(domain) WHERE verified_at IS NOT NULL;

CREATE TABLE access_grants (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    match_kind    TEXT NOT NULL CHECK (match_kind IN ('everyone', 'email_domain', 'group_id', 'group_name', 'subject', 'email')),
    -- Normalised for comparison: lower-case for domains, emails and group names.
    match_value   TEXT,
    is_admin      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at    TEXT NOT NULL
);
CREATE INDEX access_grants_connection_idx ON access_grants(connection_id);

CREATE TABLE access_grant_teams (
    grant_id INTEGER NOT NULL REFERENCES access_grants(id) ON DELETE CASCADE,
    team_id  INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (grant_id, team_id)
);

CREATE TABLE group_mappings (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id        INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    group_match   TEXT NOT NULL CHECK (group_match IN ('id', 'name')),
    group_value   TEXT NOT NULL,
    -- Group IDs compare exactly, names case-insensitively.
    group_value_normalized TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    CONSTRAINT group_mappings_key UNIQUE (connection_id, group_match, group_value_normalized)
);

CREATE TABLE group_mapping_teams (
    mapping_id INTEGER NOT NULL REFERENCES group_mappings(id) ON DELETE CASCADE,
    team_id    INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (mapping_id, team_id)
);

-- A person as one connection knows them: the stable subject the IdP vouches for.
CREATE TABLE external_identities (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    subject       TEXT NOT NULL,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    email         TEXT,
    created_at    TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL,
    CONSTRAINT external_identities_key UNIQUE (connection_id, subject)
);
CREATE INDEX external_identities_user_idx ON external_identities(user_id);

CREATE TABLE invitations (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id             INTEGER NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    email              TEXT NOT NULL,
    email_normalized   TEXT NOT NULL,
    is_admin           BOOLEAN NOT NULL DEFAULT FALSE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'revoked')),
    invited_by_user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,
    expires_at         TEXT NOT NULL,
    accepted_at        TEXT,
    accepted_user_id   INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
-- One pending invitation per address and org.
CREATE UNIQUE INDEX invitations_pending_key ON invitations(org_id, email_normalized) WHERE status = 'pending';

CREATE TABLE invitation_teams (
    invitation_id INTEGER NOT NULL REFERENCES invitations(id) ON DELETE CASCADE,
    team_id       INTEGER NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    PRIMARY KEY (invitation_id, team_id)
);
