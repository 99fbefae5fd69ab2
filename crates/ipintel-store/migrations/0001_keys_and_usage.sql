-- API keys: only a SHA-256 digest of the secret is stored, never the key.
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY NOT NULL,
    secret_hash          BLOB NOT NULL CHECK (length(secret_hash) = 32),
    label                TEXT,
    -- NULL until the key's first counted lookup provisions 'free'.
    plan                 TEXT CHECK (plan IN ('free', 'professional', 'enterprise', 'custom')),
    daily_limit_override INTEGER CHECK (daily_limit_override >= 0),
    created_at           INTEGER NOT NULL,
    revoked_at           INTEGER,
    plan_provisioned_at  INTEGER,
    updated_at           INTEGER NOT NULL
);

CREATE INDEX api_keys_updated_at ON api_keys (updated_at);

-- Lookups per key and UTC day ('YYYY-MM-DD').
CREATE TABLE usage_daily (
    key_id TEXT NOT NULL REFERENCES api_keys (id),
    day    TEXT NOT NULL,
    count  INTEGER NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key_id, day)
);

CREATE INDEX usage_daily_day ON usage_daily (day);
