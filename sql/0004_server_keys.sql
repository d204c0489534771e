-- Keys of the deployment itself, one row per purpose (e.g. `request-fingerprint`): a random key
-- kept as the row's data key, wrapped under the master key like any row's, so that
-- `realtime rotate-key` re-wraps it and the key itself never changes.
create table server_keys (
    id uuid primary key,
    purpose text not null unique,
    key_id text not null,
    wrapped_key bytea not null,
    created_at timestamptz not null default now()
);
