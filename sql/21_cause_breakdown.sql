-- stage:   21_cause_breakdown
-- purpose: What made requests slow: slow requests by immediate cause and root cause, with their
--          share of all slow requests and their latency.
-- grain:   one row per (cause, root_cause)
-- reads:   attribution
-- creates: cause_breakdown (view)
CREATE OR REPLACE VIEW cause_breakdown AS
SELECT
    cause,
    root_cause,
    count(*) AS requests,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS share_pct,
    round(median(latency_ms), 1) AS median_ms,
    round(max(latency_ms), 1) AS max_ms,
    count(*) FILTER (WHERE len(missing) > 0) AS with_missing_evidence
FROM attribution
WHERE slow
GROUP BY cause, root_cause
ORDER BY requests DESC, cause, root_cause;
