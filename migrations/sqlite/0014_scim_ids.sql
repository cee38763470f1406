-- Opaque SCIM ids (RFC 7643 §3.1): new Users and Groups get a time-ordered UUID, which tells
-- no tenant anything about another's volume and is unique across resource types. Internal
-- keys stay integers. Resources the IdPs already hold keep answering at the id they were
-- given: their integer, as text.
ALTER TABLE scim_users ADD COLUMN scim_id TEXT NOT NULL DEFAULT '';
UPDATE scim_users SET scim_id = CAST(id AS TEXT);
CREATE UNIQUE INDEX scim_users_scim_id_key ON scim_users(scim_id);

ALTER TABLE scim_groups ADD COLUMN scim_id TEXT NOT NULL DEFAULT '';
UPDATE scim_groups SET scim_id = CAST(id AS TEXT);
CREATE UNIQUE INDEX scim_groups_scim_id_key ON scim_groups(scim_id);
