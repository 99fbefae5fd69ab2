-- The PostgreSQL schema: the same tables as the SQLite migrations one
-- level up, in PostgreSQL's types. Times are Unix seconds (BIGINT), days
-- are DATEs (UTC), counts are BIGINT. A later change to the schema gets a
-- migration in both folders.

-- API keys: only a SHA-256 digest of the secret is stored, never the key.
CREATE TABLE api_keys (
    id                   TEXT PRIMARY KEY,
    secret_hash          BYTEA NOT NULL CHECK (octet_length(secret_hash) = 32),
    label                TEXT,
    -- NULL until the key's first counted lookup provisions 'free'.
    plan                 TEXT CHECK (plan IN ('free', 'professional', 'enterprise', 'custom')),
    daily_limit_override BIGINT CHECK (daily_limit_override >= 0),
    created_at           BIGINT NOT NULL,
    revoked_at           BIGINT,
    plan_provisioned_at  BIGINT,
    updated_at           BIGINT NOT NULL
);

-- Change polling: keys whose row changed since a time.
CREATE INDEX api_keys_updated_at ON api_keys (updated_at);

-- Lookups per key and UTC day.
CREATE TABLE usage_daily (
    key_id TEXT NOT NULL REFERENCES api_keys (id),
    day    DATE NOT NULL,
    count  BIGINT NOT NULL CHECK (count >= 0),
    PRIMARY KEY (key_id, day)
);

-- Loading every key's count for today at start-up.
CREATE INDEX usage_daily_day ON usage_daily (day);

-- Abuse reports filed through POST /v1/ip/report. A row is written (and
-- committed) before the report is acknowledged.
CREATE TABLE reports (
    id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id           TEXT NOT NULL REFERENCES api_keys (id),
    -- The address alone (no prefix): compared as an address, not as text.
    ip               INET NOT NULL CHECK (masklen(ip) = CASE family(ip) WHEN 4 THEN 32 ELSE 128 END),
    ip_family        SMALLINT NOT NULL CHECK (ip_family IN (4, 6)),
    -- The address for IPv4, its /64 network for IPv6 ('2001:db8::/64').
    network_key      TEXT NOT NULL,
    -- Comma-separated category names.
    categories       TEXT NOT NULL CHECK (categories <> ''),
    severity         SMALLINT NOT NULL CHECK (severity BETWEEN 1 AND 4),
    confidence       SMALLINT NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    comment          TEXT CHECK (comment IS NULL OR char_length(comment) <= 1024),
    -- When the behaviour happened (reporter's clock, checked on intake).
    reported_at      BIGINT NOT NULL,
    -- When the service accepted the report (its own clock).
    received_at      BIGINT NOT NULL,
    -- What the data said about the address when the report arrived.
    country          TEXT,
    asn              BIGINT CHECK (asn BETWEEN 0 AND 4294967295),
    asn_name         TEXT,
    -- Who stands behind the report, for the score: the client network it
    -- came from (an IPv4 /24 or IPv6 /48, as text) and the reporting key's
    -- plan at the time.
    reporter_network TEXT,
    reporter_plan    TEXT
        CHECK (reporter_plan IN ('free', 'professional', 'enterprise', 'custom'))
);

-- The duplicate rule (same key, same address, 15 minutes).
CREATE INDEX reports_key_ip_received ON reports (key_id, ip, received_at);
-- The daily report quota of a key.
CREATE INDEX reports_key_received ON reports (key_id, received_at);
-- Loading the recent window at start-up.
CREATE INDEX reports_received ON reports (received_at);
