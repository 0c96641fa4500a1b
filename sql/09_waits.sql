-- stage:   09_waits
-- purpose: Monitor waits (jdk.JavaMonitorEnter, also written by async-profiler's lock mode) on the
--          capture's clock: JFR instants plus the JFR offset used.
-- grain:   one row per monitor-enter event (wait_id)
-- reads:   monitor_waits, clock_offsets
-- creates: waits
CREATE OR REPLACE TABLE waits AS
WITH o AS (SELECT to_microseconds(round(offset_ms * 1000)::BIGINT) AS shift FROM clock_offsets WHERE source = 'jfr')
SELECT
    row_number() OVER (ORDER BY m.start_at, m.artifact_id, m.position) AS wait_id,
    m.tid,
    m.thread_name,
    m.monitor_class,
    m.monitor_address,
    m.owner_tid AS owner_hint_tid,
    m.owner_name AS owner_hint_name,
    m.start_at + o.shift AS start_at,
    m.end_at + o.shift AS end_at,
    m.duration_ms,
    m.start_at AS raw_start_at,
    m.top_frames
FROM monitor_waits m CROSS JOIN o
WHERE coalesce(m.event_type, 'jdk.JavaMonitorEnter') = 'jdk.JavaMonitorEnter' AND m.tid IS NOT NULL;
