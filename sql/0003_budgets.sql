-- Per-user budgets kept across nodes: one token bucket per (key), e.g. `send:<user id>`.
-- `tokens` is the level at `updated_at`; it refills at the bucket's rate up to its capacity.
create table budget_buckets (
    key text primary key,
    tokens double precision not null,
    updated_at timestamptz not null default now()
);
create index budget_buckets_updated_at on budget_buckets (updated_at);
