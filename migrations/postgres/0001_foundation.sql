-- rollcall foundation schema (PostgreSQL). Keep in step with ../sqlite/0001_foundation.sql:
-- same tables, columns and constraint names; only the types differ.

CREATE TABLE organizations (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug            TEXT NOT NULL,
    name            TEXT NOT NULL,
    require_2fa     BOOLEAN NOT NULL DEFAULT FALSE,
    sso_enforced    BOOLEAN NOT NULL DEFAULT FALSE,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT organizations_slug_key UNIQUE (slug)
);

CREATE TABLE users (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email            TEXT NOT NULL,
    email_normalized TEXT NOT NULL,
    display_name     TEXT,
    given_name       TEXT,
    family_name      TEXT,
    created_at       TIMESTAMPTZ NOT NULL,
    updated_at       TIMESTAMPTZ NOT NULL,
    CONSTRAINT users_email_key UNIQUE (email_normalized)
);

CREATE TABLE memberships (
    org_id      BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    is_admin    BOOLEAN NOT NULL DEFAULT FALSE,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    source      TEXT NOT NULL CHECK (source IN ('invitation', 'sso', 'scim', 'manual', 'bootstrap')),
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships(user_id);

CREATE TABLE teams (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id          BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_normalized TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    CONSTRAINT teams_org_name_key UNIQUE (org_id, name_normalized)
);

CREATE TABLE team_memberships (
    team_id     BIGINT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,
    org_id      BIGINT NOT NULL,
    user_id     BIGINT NOT NULL,
    source      TEXT NOT NULL CHECK (source IN ('manual', 'sso', 'scim', 'invitation')),
    created_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (team_id, user_id),
    FOREIGN KEY (org_id, user_id) REFERENCES memberships(org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX team_memberships_member_idx ON team_memberships(org_id, user_id);

CREATE TABLE sessions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_seen_at  TIMESTAMPTZ NOT NULL,
    expires_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    CONSTRAINT sessions_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX sessions_user_idx ON sessions(user_id);

CREATE TABLE api_tokens (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    secret_hash   TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    last_used_at  TIMESTAMPTZ,
    expires_at    TIMESTAMPTZ,
    revoked_at    TIMESTAMPTZ,
    CONSTRAINT api_tokens_secret_hash_key UNIQUE (secret_hash)
);
CREATE INDEX api_tokens_user_idx ON api_tokens(user_id);

CREATE TABLE audit_events (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id       BIGINT REFERENCES organizations(id) ON DELETE CASCADE,
    actor_user_id BIGINT,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    target_type  TEXT NOT NULL,
    target_id    TEXT,
    before_state JSONB,
    after_state  JSONB,
    request_id   TEXT,
    created_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX audit_events_org_idx ON audit_events(org_id, id);
