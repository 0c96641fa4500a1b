-- audit: the keys of every attribution row are present
SELECT 'null key' AS problem, pp_id
FROM attribution
WHERE pp_id IS NULL OR conn_id IS NULL OR correlation_id IS NULL OR topic IS NULL OR partition IS NULL
    OR arrival_at IS NULL OR missing IS NULL;
