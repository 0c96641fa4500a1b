-- stage:   02_produce
-- purpose: The produce requests to explain, one per partition, on the capture's clock
--          (shifted by the manifest's capture offset), with `slow` against the SLO.
--          `slow` is null when the response was not captured (latency unknown).
-- grain:   one row per produce request x topic x partition (pp_id)
-- reads:   produce_partitions, settings
-- creates: produce
CREATE OR REPLACE TABLE produce AS
WITH s AS (SELECT to_microseconds(round(capture_offset_ms * 1000)::BIGINT) AS shift, slo_ms FROM settings)
SELECT
    row_number() OVER (ORDER BY p.arrival_at, p.conn_id, p.correlation_id, p.topic, p.partition) AS pp_id,
    p.conn_id,
    p.correlation_id,
    p.client_addr,
    p.client_port,
    p.topic,
    p.partition,
    p.acks,
    p.records,
    p.records_bytes,
    p.producer_id,
    p.producer_epoch,
    p.base_sequence,
    p.batch_crc,
    p.message_ids,
    p.base_offset,
    p.arrival_at + s.shift AS arrival_at,
    p.end_at + s.shift AS end_at,
    p.latency_ms,
    p.latency_ms >= s.slo_ms AS slow
FROM produce_partitions p CROSS JOIN s;
