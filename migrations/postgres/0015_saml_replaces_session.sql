-- The session of the browser that started a SAML sign-in: the ACS, a cross-site POST that
-- carries no session cookie, ends it when the new session starts, so a new sign-in always
-- replaces the previous one.
ALTER TABLE saml_requests ADD COLUMN replaces_session_id BIGINT;
