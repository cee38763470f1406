-- Local accounts (SQLite). Keep in step with ../postgres/0004_local_accounts.sql.

CREATE TABLE password_credentials (
    user_id       INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    -- PHC string (argon2id, with its own salt and parameters).
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
