-- Login CSRF: an SP-initiated SAML sign-in finishes only in the browser that started it.
-- The ACS (a cross-site POST, which carries no SameSite=Lax cookie) verifies the response
-- and keeps its outcome here; the browser is sent on to a same-site GET that shows the
-- binding cookie set when the sign-in started, and only then is the person signed in.
ALTER TABLE saml_requests ADD COLUMN binding_hash TEXT;
ALTER TABLE saml_requests ADD COLUMN finish_hash TEXT;
ALTER TABLE saml_requests ADD COLUMN finish_data TEXT;
ALTER TABLE saml_requests ADD COLUMN finished_at TIMESTAMPTZ;
CREATE UNIQUE INDEX saml_requests_finish_hash_key ON saml_requests (finish_hash);
