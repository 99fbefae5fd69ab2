-- Abuse reports filed through POST /v1/ip/report. A row is written (and
-- committed) before the report is acknowledged.
CREATE TABLE reports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id      TEXT NOT NULL REFERENCES api_keys (id),
    -- Canonical text of the address (RFC 5952 for IPv6).
    ip          TEXT NOT NULL,
    ip_family   INTEGER NOT NULL CHECK (ip_family IN (4, 6)),
    -- The address for IPv4, its /64 network for IPv6 ('2001:db8::/64').
    network_key TEXT NOT NULL,
    -- Comma-separated category names.
    categories  TEXT NOT NULL CHECK (categories <> ''),
    severity    INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    confidence  INTEGER NOT NULL CHECK (confidence BETWEEN 0 AND 100),
    comment     TEXT CHECK (comment IS NULL OR length(comment) <= 1024),
    -- When the behaviour happened (reporter's clock, checked on intake).
    reported_at INTEGER NOT NULL,
    -- When the service accepted the report (its own clock).
    received_at INTEGER NOT NULL,
    -- What the data said about the address when the report arrived.
    country     TEXT,
    asn         INTEGER,
    asn_name    TEXT
);

-- The duplicate rule (same key, same address, 15 minutes).
CREATE INDEX reports_key_ip_received ON reports (key_id, ip, received_at);
-- The daily report quota of a key.
CREATE INDEX reports_key_received ON reports (key_id, received_at);
-- Loading the recent window at start-up.
CREATE INDEX reports_received ON reports (received_at);
