-- Local accounts (PostgreSQL). Keep in step with ../sqlite/0004_local_accounts.sql.

CREATE TABLE password_credentials (
    user_id       BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- PHC string (argon2id, with its own salt and parameters).
    password_hash TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL
);
