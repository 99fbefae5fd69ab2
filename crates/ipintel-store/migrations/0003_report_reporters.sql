-- Who stands behind a report, for the score: the client network it came
-- from (an IPv4 /24 or IPv6 /48, as text), and the reporting key's plan at
-- the time. Reports stored before this migration have neither: they are
-- grouped by key alone and count as free-plan reports.
ALTER TABLE reports ADD COLUMN reporter_network TEXT;
ALTER TABLE reports ADD COLUMN reporter_plan TEXT
    CHECK (reporter_plan IS NULL
           OR reporter_plan IN ('free', 'professional', 'enterprise', 'custom'));
