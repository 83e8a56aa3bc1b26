-- Minted API keys, recorded so that they can be listed and revoked: the key's id (its `jti`), the
-- ids it names, its label and times; never the key itself. A key minted before keys were recorded
-- is recorded when it is presented for revocation, with the SHA-256 of its text (`digest`).
-- Rows are never deleted and a revocation is never undone: every process keeps the revoked ones
-- in memory and reloads them when their count changes.
CREATE TABLE api_keys (
    id            BIGSERIAL PRIMARY KEY,
    public_id     VARCHAR(36) NOT NULL UNIQUE,
    app_id        TEXT,
    user_id       TEXT,
    session_id    TEXT,
    collection_id TEXT,
    label         TEXT,
    expires_at    TIMESTAMPTZ,
    created_at    TIMESTAMPTZ NOT NULL,
    revoked_at    TIMESTAMPTZ,
    digest        VARCHAR(64) UNIQUE
);
CREATE INDEX api_keys_revoked ON api_keys (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX api_keys_app ON api_keys (app_id, id);
