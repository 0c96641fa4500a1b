-- audit: exactly one attribution row per produce partition (none lost, none doubled)
SELECT 'missing or extra rows' AS problem, (SELECT count(*) FROM produce_partitions) AS expected, count(*) AS found
FROM attribution
HAVING count(*) <> (SELECT count(*) FROM produce_partitions)
UNION ALL
SELECT 'duplicate key', count(*), NULL
FROM attribution
GROUP BY conn_id, correlation_id, topic, partition
HAVING count(*) > 1;
