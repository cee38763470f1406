-- Two-factor authentication, password reset and rate limits (SQLite).
-- Keep in step with ../postgres/0005_mfa_reset_limits.sql.

CREATE TABLE totp_credentials (
    user_id      INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- Base32 shared secret; the authenticator app holds the other copy.
    secret       TEXT NOT NULL,
    -- NULL until the person proved their app works by entering a code.
    confirmed_at TEXT,
    -- The last 30-second step whose code was accepted: a code is good once.
    last_step    INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

CREATE TABLE recovery_codes (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at   TEXT,
    CONSTRAINT recovery_codes_key UNIQUE (user_id, code_hash)
);

-- A password sign-in waiting for its second factor (or for the person to set one up, when
-- an org requires it). Not a session: it grants nothing until it is completed.
CREATE TABLE login_challenges (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    secret_hash TEXT NOT NULL,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify', 'enrol')),
    return_to   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    CONSTRAINT login_challenges_secret_key UNIQUE (secret_hash)
);

CREATE TABLE password_resets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    used_at     TEXT,
    created_at  TEXT NOT NULL,
    CONSTRAINT password_resets_token_key UNIQUE (token_hash)
);

-- Fixed-window counters shared by every instance: (what is limited, window start) → hits.
CREATE TABLE rate_limits (
    key          TEXT NOT NULL,
    window_start TEXT NOT NULL,
    hits         INTEGER NOT NULL,
    PRIMARY KEY (key, window_start)
);
