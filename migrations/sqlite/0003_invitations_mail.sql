-- Invitation links and the mail outbox (SQLite). Keep in step with ../postgres/.

-- The link's secret, hashed; replaced on every resend, so an old link stops working.
ALTER TABLE invitations ADD COLUMN token_hash TEXT;
ALTER TABLE invitations ADD COLUMN sent_count INTEGER NOT NULL DEFAULT 0;
CREATE UNIQUE INDEX invitations_token_key ON invitations(token_hash);
CREATE INDEX invitations_org_idx ON invitations(org_id, id);

-- Messages are written here in the same transaction as what they announce, then delivered
-- by a background worker: a crash loses nothing, and a message may be sent twice, never zero
-- times (at-least-once).
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    org_id          INTEGER REFERENCES organizations(id) ON DELETE CASCADE,
    invitation_id   INTEGER REFERENCES invitations(id) ON DELETE CASCADE,
    to_address      TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    -- A worker that claimed the message holds it until then; if it dies, another takes over.
    locked_until    TEXT,
    last_error      TEXT,
    sent_at         TEXT,
    created_at      TEXT NOT NULL
);
CREATE INDEX outbox_due_idx ON outbox(status, next_attempt_at);
CREATE INDEX outbox_invitation_idx ON outbox(invitation_id);
