-- stage:   22_causes_by_topic
-- purpose: Slow requests per topic and partition by cause, for the report.
-- grain:   one row per (topic, partition, cause)
-- reads:   attribution
-- creates: causes_by_topic (view)
CREATE OR REPLACE VIEW causes_by_topic AS
SELECT topic, partition, cause, root_cause, count(*) AS requests, round(max(latency_ms), 1) AS max_ms
FROM attribution
WHERE slow
GROUP BY topic, partition, cause, root_cause
ORDER BY requests DESC, topic, partition, cause;
