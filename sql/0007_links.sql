-- Shareable links: a secret for someone without an account. Its content (subject and body) is
-- sealed under a key derived from the link's token, which is never stored, only its SHA-256,
-- to find the link: neither this table, a backup nor the master key opens it. What the
-- creator's list shows (the subject) is sealed apart, under a data key of its own wrapped by
-- the master key. A link opens while it has not ended and not expired; its views are counted
-- one statement at a time, so that no more are given than it allows, on any number of nodes;
-- the fifth wrong passphrase ends it.
create table links (
    id uuid primary key,
    creator_id uuid not null references users (id) on delete cascade,
    token_hash bytea not null unique,
    created_at timestamptz not null default statement_timestamp(),
    expires_at timestamptz not null,
    max_views integer not null check (max_views between 1 and 100),
    views integer not null default 0,
    last_viewed_at timestamptz,
    has_passphrase boolean not null,
    wrong_passphrases integer not null default 0 check (wrong_passphrases between 0 and 5),
    key_id text not null,
    wrapped_key bytea not null,
    listed_subject bytea not null,
    subject bytea not null,
    body bytea not null,
    ended_at timestamptz,
    end_reason text check (end_reason in ('used', 'revoked', 'burned')),
    check (views between 0 and max_views),
    check ((ended_at is null) = (end_reason is null))
);

create index links_creator on links (creator_id, created_at desc);
create index links_due on links (expires_at);
