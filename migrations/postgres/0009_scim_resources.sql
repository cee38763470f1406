-- SCIM Users and Groups (PostgreSQL). Keep in step with ../sqlite/0009_scim_resources.sql.

-- A SCIM User is a person's membership of the org as one identity provider pushed it. The
-- person is the global `users` row; this row keeps what the IdP sent (userName, externalId,
-- the attributes it may read back) and the resource version.
CREATE TABLE scim_users (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id               BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id        BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    -- NULL while the IdP has sent no email address: rollcall's accounts are keyed by
    -- one, so such a User is kept as pushed and becomes a member once an address arrives.
    user_id              BIGINT REFERENCES users(id) ON DELETE CASCADE,
    -- Whether this push created the global user. Only then may a sign-in through the same
    -- connection link to it by email outside a verified domain.
    created_user         BOOLEAN NOT NULL,
    user_name            TEXT NOT NULL,
    -- Lower-cased in Rust: userName is unique per org case-insensitively.
    user_name_normalized TEXT NOT NULL,
    external_id          TEXT,
    display_name         TEXT,
    given_name           TEXT,
    family_name          TEXT,
    active               BOOLEAN NOT NULL,
    -- The resource's other attributes as the IdP sent them (JSON): emails, phoneNumbers,
    -- title, the enterprise extension…
    attributes           JSONB NOT NULL,
    version              BIGINT NOT NULL DEFAULT 1,
    created_at           TIMESTAMPTZ NOT NULL,
    updated_at           TIMESTAMPTZ NOT NULL,
    CONSTRAINT scim_users_user_name_key UNIQUE (org_id, user_name_normalized),
    CONSTRAINT scim_users_user_key UNIQUE (org_id, user_id)
);
-- Lists page in id order within an org; without this an org's Users would be sorted whole.
CREATE INDEX scim_users_org_idx ON scim_users(org_id, id);
CREATE INDEX scim_users_external_id_idx ON scim_users(org_id, external_id);
CREATE INDEX scim_users_user_idx ON scim_users(user_id);

CREATE TABLE scim_groups (
    id                      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org_id                  BIGINT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    connection_id           BIGINT NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
    display_name            TEXT NOT NULL,
    display_name_normalized TEXT NOT NULL,
    external_id             TEXT,
    version                 BIGINT NOT NULL DEFAULT 1,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    CONSTRAINT scim_groups_display_name_key UNIQUE (org_id, display_name_normalized)
);
CREATE INDEX scim_groups_org_idx ON scim_groups(org_id, id);
CREATE INDEX scim_groups_external_id_idx ON scim_groups(org_id, external_id);

-- One row per member, so adding or removing one member of a large group is one row.
CREATE TABLE scim_group_members (
    group_id     BIGINT NOT NULL REFERENCES scim_groups(id) ON DELETE CASCADE,
    scim_user_id BIGINT NOT NULL REFERENCES scim_users(id) ON DELETE CASCADE,
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (group_id, scim_user_id)
);
CREATE INDEX scim_group_members_user_idx ON scim_group_members(scim_user_id);
