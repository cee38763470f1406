-- Two-factor authentication, password reset and rate limits (PostgreSQL).
-- Keep in step with ../sqlite/0005_mfa_reset_limits.sql.

CREATE TABLE totp_credentials (
    user_id      BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- Base32 shared secret; the authenticator app holds the other copy.
    secret       TEXT NOT NULL,
    -- NULL until the person proved their app works by entering a code.
    confirmed_at TIMESTAMPTZ,
    -- The last 30-second step whose code was accepted: a code is good once.
    last_step    BIGINT NOT NULL DEFAULT 0,
    created_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE recovery_codes (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   TIMESTAMPTZ,
    CONSTRAINT recovery_codes_key UNIQUE (user_id, code_hash)
);

-- A password sign-in waiting for its second factor (or for the person to set one up, when
-- an org requires it). Not a session: it grants nothing until it is completed.
CREATE TABLE login_challenges (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    secret_hash TEXT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'enrol')),
    return_to   TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT login_challenges_secret_key UNIQUE (secret_hash)
);

CREATE TABLE password_resets (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL,
    expires_at  TIMESTAMPTZ NOT NULL,
    used_at     TIMESTAMPTZ,
    created_at  TIMESTAMPTZ NOT NULL,
    CONSTRAINT password_resets_token_key UNIQUE (token_hash)
);

-- Fixed-window counters shared by every instance: (what is limited, window start) → hits.
CREATE TABLE rate_limits (
    key          TEXT NOT NULL,
    window_start TIMESTAMPTZ NOT NULL,
    hits         BIGINT NOT NULL,
    PRIMARY KEY (key, window_start)
);
