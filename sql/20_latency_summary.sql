-- stage:   20_latency_summary
-- purpose: Produce latency percentiles and SLO violations, per topic and overall (topic = '*').
-- grain:   one row per topic, plus one overall row
-- reads:   attribution, settings
-- creates: latency_summary (view)
CREATE OR REPLACE VIEW latency_summary AS
SELECT
    coalesce(topic, '*') AS topic,
    count(*) AS requests,
    count(latency_ms) AS answered,
    count(*) FILTER (WHERE slow) AS slow,
    round(100.0 * count(*) FILTER (WHERE slow) / nullif(count(latency_ms), 0), 3) AS slow_pct,
    round(quantile_cont(latency_ms, 0.5), 3) AS p50_ms,
    round(quantile_cont(latency_ms, 0.99), 3) AS p99_ms,
    round(quantile_cont(latency_ms, 0.999), 3) AS p999_ms,
    round(max(latency_ms), 3) AS max_ms,
    (SELECT slo_ms FROM settings) AS slo_ms
FROM attribution
GROUP BY ROLLUP (topic)
ORDER BY topic = '*' DESC, topic;
