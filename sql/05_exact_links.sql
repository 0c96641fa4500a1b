-- stage:   05_exact_links
-- purpose: Link each produce partition to the batch it put on disk, by exact keys, strongest
--          first: the batch CRC (base offset and leader epoch sit outside it, so the broker's copy
--          keeps the producer's CRC), then producer id + epoch + base sequence, then the first
--          record's message id found in the segment's records. Through the batch, the traced
--          write that stored it (write_id, null when the tracer missed it).
-- grain:   one row per linked produce partition (pp_id)
-- reads:   produce, batch_writes, segment_records, disk_writes
-- creates: exact_links
CREATE OR REPLACE TABLE exact_links AS
WITH cand AS (
    SELECT p.pp_id, bw.batch_id, 'crc' AS link_method, 1 AS strength
    FROM produce p
    JOIN batch_writes bw ON bw.topic = p.topic AND bw.partition = p.partition AND bw.crc = p.batch_crc
    UNION ALL
    SELECT p.pp_id, bw.batch_id, 'producer_seq', 2
    FROM produce p
    JOIN batch_writes bw
        ON bw.topic = p.topic
        AND bw.partition = p.partition
        AND bw.producer_id = p.producer_id
        AND bw.producer_epoch = p.producer_epoch
        AND bw.base_sequence = p.base_sequence
    WHERE p.producer_id >= 0
    UNION ALL
    SELECT p.pp_id, bw.batch_id, 'message_id', 3
    FROM produce p
    JOIN segment_records r
        ON r.topic = p.topic AND r.partition = p.partition AND r.message_id = p.message_ids[1]
    JOIN batch_writes bw
        ON bw.topic = r.topic AND bw.partition = r.partition AND bw.segment = r.segment
        AND bw.file_position = r.file_position
    WHERE len(p.message_ids) > 0
),
best AS (
SELECT
    c.pp_id,
    c.batch_id,
    c.link_method,
    c.strength,
    bw.write_id,
    bw.segment,
    bw.file_position,
    bw.base_offset,
    abs(epoch_us(w.start_at_m) - epoch_us(p.arrival_at)) AS distance_us
FROM cand c
JOIN batch_writes bw USING (batch_id)
JOIN produce p USING (pp_id)
LEFT JOIN disk_writes w ON w.write_id = bw.write_id
QUALIFY row_number() OVER (
    PARTITION BY c.pp_id
    ORDER BY c.strength, (bw.base_offset = p.base_offset) DESC NULLS LAST,
        abs(epoch_us(w.start_at_m) - epoch_us(p.arrival_at)) NULLS LAST, c.batch_id
) = 1
)
-- a batch stores one request: when two requests claim it, the strongest and nearest keeps it
SELECT pp_id, batch_id, link_method, write_id, segment, file_position, base_offset
FROM best
QUALIFY row_number() OVER (PARTITION BY batch_id ORDER BY strength, distance_us NULLS LAST, pp_id) = 1;
