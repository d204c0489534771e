-- A budget bucket is taken on every send, with the send's authentication. Its level is worth
-- nothing after a crash (a bucket that is gone is full, as a new one), so the table writes no
-- WAL: a statement that changes only it commits without waiting for a flush to disk, and after
-- a crash PostgreSQL empties it, giving every user full budgets again. Without an index on
-- `updated_at` (the purge, once a minute, reads the table through), taking a token changes no
-- indexed column, so PostgreSQL updates the row in place on its page (a HOT update).
drop index budget_buckets_updated_at;
alter table budget_buckets set unlogged;
