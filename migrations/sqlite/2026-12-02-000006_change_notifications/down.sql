-- PostgreSQL only: replicas follow each other's writes through NOTIFY. SQLite serves one
-- process (and the CLI beside it), whose caches see their own writes; nothing to do here.
SELECT 1;
