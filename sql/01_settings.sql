-- stage:   01_settings
-- purpose: One row of thresholds and clock offsets for every later stage. Values come from
--          run_settings (name, value), which kforensics fills from bundle.toml and the command
--          line; anything not given takes the default written here.
-- grain:   one row
-- reads:   run_settings
-- creates: settings
CREATE TABLE IF NOT EXISTS run_settings (name VARCHAR, value DOUBLE);

CREATE OR REPLACE TABLE settings AS
WITH given AS (
    SELECT name, last(value ORDER BY rowid) AS value FROM run_settings GROUP BY name
)
SELECT
    coalesce((SELECT value FROM given WHERE name = 'slo_ms'), 65.0) AS slo_ms,
    -- a cause must account for at least this share of the request's latency
    coalesce((SELECT value FROM given WHERE name = 'explain_fraction'), 0.5) AS explain_fraction,
    -- a journal commit must overlap at least this share of a slow write to be its root cause
    coalesce((SELECT value FROM given WHERE name = 'commit_fraction'), 0.5) AS commit_fraction,
    -- tolerance of window joins across sources, added to the spread of the clock estimate
    coalesce((SELECT value FROM given WHERE name = 'slack_ms'), 1.0) AS slack_ms,
    -- writes shorter than this cannot explain anything and stay out of range joins
    coalesce((SELECT value FROM given WHERE name = 'min_write_ms'), 1.0) AS min_write_ms,
    -- the acknowledging follower fetch must arrive at most this long before the response ends
    coalesce((SELECT value FROM given WHERE name = 'replication_ack_ms'), 5.0) AS replication_ack_ms,
    -- request handler threads (num.io.threads) when no thread dump or JFR names them
    (SELECT value FROM given WHERE name = 'handler_threads')::INTEGER AS handler_threads,
    coalesce((SELECT value FROM given WHERE name = 'clock_offset_ms.capture'), 0.0) AS capture_offset_ms,
    coalesce((SELECT value FROM given WHERE name = 'clock_offset_ms.ebpf'), 0.0) AS ebpf_offset_ms,
    coalesce((SELECT value FROM given WHERE name = 'clock_offset_ms.jfr'), 0.0) AS jfr_offset_ms,
    coalesce((SELECT value FROM given WHERE name = 'clock_offset_ms.threaddump'), 0.0) AS threaddump_offset_ms;
