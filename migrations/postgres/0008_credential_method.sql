-- How each session and API token came to be, so orgs that enforce single sign-on can refuse
-- password-made credentials. A token inherits the method of the credential that created it;
-- 'operator' is the bootstrap token (break-glass access, e.g. to repair SSO settings).
ALTER TABLE sessions ADD COLUMN method TEXT NOT NULL DEFAULT 'password' CHECK (method IN ('password', 'sso'));
ALTER TABLE api_tokens ADD COLUMN method TEXT NOT NULL DEFAULT 'password' CHECK (method IN ('password', 'sso', 'operator'));
