-- stage:   04_batch_writes
-- purpose: Each record batch found in a segment, with the traced write whose byte range holds
--          the batch's file position (same topic, partition and segment file): the write with
--          the greatest file offset at or before the batch (ASOF), kept if its bytes reach it.
-- grain:   one row per segment batch (batch_id); write_id null when no traced write holds it
-- reads:   segment_batches, disk_writes
-- creates: batch_writes
CREATE OR REPLACE TABLE batch_writes AS
WITH b AS (
    SELECT
        row_number() OVER (ORDER BY topic, partition, segment, file_position, artifact_id) AS batch_id,
        *
    FROM segment_batches
    WHERE NOT coalesce(control, false)
)
SELECT
    b.batch_id,
    b.topic,
    b.partition,
    b.segment,
    b.file_position,
    b.batch_bytes,
    b.base_offset,
    b.last_offset,
    b.crc,
    b.producer_id,
    b.producer_epoch,
    b.base_sequence,
    CASE WHEN b.file_position < w.file_offset + greatest(w.bytes, 1) THEN w.write_id END AS write_id
FROM b
ASOF LEFT JOIN disk_writes w
    ON w.topic = b.topic
    AND w.partition = b.partition
    AND w.segment = b.segment
    AND b.file_position >= w.file_offset;
