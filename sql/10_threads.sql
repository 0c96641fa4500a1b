-- stage:   10_threads
-- purpose: A name for every Linux TID: the thread dump's name first (nid = TID), then JFR's
--          thread table, then the names on JFR events, then the eBPF comm (15 characters).
--          is_handler marks Kafka's request handler threads (…request-handler-N).
-- grain:   one row per TID
-- reads:   jvm_threads, jfr_threads, monitor_waits, fs_writes
-- creates: threads
CREATE OR REPLACE TABLE threads AS
WITH named AS (
    SELECT tid, name, 1 AS rank, 'threaddump' AS source FROM jvm_threads WHERE tid IS NOT NULL AND name IS NOT NULL
    UNION ALL
    SELECT os_tid, name, 2, 'jfr' FROM jfr_threads WHERE os_tid IS NOT NULL AND name IS NOT NULL
    UNION ALL
    SELECT tid, thread_name, 3, 'jfr_event' FROM monitor_waits WHERE tid IS NOT NULL AND thread_name IS NOT NULL
    UNION ALL
    SELECT tid, comm, 4, 'ebpf_comm' FROM fs_writes WHERE tid IS NOT NULL AND comm IS NOT NULL
)
SELECT
    tid,
    name,
    source,
    name LIKE '%request-handler%' AS is_handler
FROM named
QUALIFY row_number() OVER (PARTITION BY tid ORDER BY rank, name) = 1;
