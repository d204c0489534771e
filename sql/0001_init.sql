-- Accounts, groups, sessions, encrypted messages and the per-user event log.

create table users (
    id uuid primary key,
    username text not null,
    display_name text not null,
    password_hash text not null,
    is_admin boolean not null default false,
    can_send boolean not null default true,
    can_attach boolean not null default true,
    disabled boolean not null default false,
    created_at timestamptz not null default now()
);
create unique index users_username_key on users (lower(username));
create index users_username_prefix on users (lower(username) text_pattern_ops);
create index users_display_name_prefix on users (lower(display_name) text_pattern_ops);

-- The last seq given to each user's events: bumped under its row lock, so that for one user
-- the order of commits and the order of seqs agree.
create table event_counters (
    user_id uuid primary key references users (id) on delete cascade,
    last_seq bigint not null default 0
);

create table events (
    user_id uuid not null references users (id) on delete cascade,
    seq bigint not null,
    type text not null,
    payload jsonb not null,
    created_at timestamptz not null default now(),
    primary key (user_id, seq)
);
create index events_created_at on events (created_at);

create table sessions (
    id uuid primary key,
    token_hash bytea not null unique,
    user_id uuid not null references users (id) on delete cascade,
    created_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index sessions_user on sessions (user_id);
create index sessions_expires_at on sessions (expires_at);

-- Failed logins per username ('user:NAME') and per client address ('addr:IP').
create table login_failures (
    key text primary key,
    failures integer not null,
    window_started_at timestamptz not null
);

create table groups (
    id uuid primary key,
    name text not null,
    created_at timestamptz not null default now()
);
create unique index groups_name_key on groups (lower(name));
create index groups_name_prefix on groups (lower(name) text_pattern_ops);

create table group_members (
    group_id uuid not null references groups (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    primary key (group_id, user_id)
);
create index group_members_user on group_members (user_id);

-- Subject and body are AES-256-GCM ciphertexts under the message's own data key, which is
-- stored wrapped under the master key `key_id`: deleting the row deletes the key.
create table messages (
    id uuid primary key,
    sender_id uuid not null references users (id) on delete cascade,
    sent_at timestamptz not null,
    expires_at timestamptz,
    high_priority boolean not null default false,
    reply_to uuid,
    key_id text not null,
    wrapped_key bytea not null,
    subject bytea not null,
    body bytea not null,
    recipient_count integer not null,
    read_count integer not null default 0
);
create index messages_sent_box on messages (sender_id, sent_at desc, id desc);
create index messages_expires_at on messages (expires_at) where expires_at is not null;
create index messages_key_id on messages (key_id);

-- The To field as the sender wrote it (users and groups), for the sent box.
create table message_addressees (
    message_id uuid not null references messages (id) on delete cascade,
    position smallint not null,
    kind text not null check (kind in ('user', 'group')),
    target_id uuid not null,
    name text not null,
    primary key (message_id, position)
);

-- One row per recipient, kept after the recipient deletes it so that read receipts stay. The
-- message's immutable sent_at, expires_at and high_priority are copied here so that inbox
-- pages and unread counts are answered from this table's indexes alone.
create table message_recipients (
    message_id uuid not null references messages (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    sent_at timestamptz not null,
    expires_at timestamptz,
    high_priority boolean not null,
    read_at timestamptz,
    deleted_at timestamptz,
    primary key (message_id, user_id)
);
create index message_recipients_inbox on message_recipients (user_id, sent_at desc, message_id desc)
    where deleted_at is null;
create index message_recipients_unread on message_recipients (user_id, expires_at)
    where read_at is null and deleted_at is null;
create index message_recipients_unread_high_priority
    on message_recipients (user_id, sent_at desc, message_id desc)
    where read_at is null and deleted_at is null and high_priority;

create table idempotency_keys (
    sender_id uuid not null references users (id) on delete cascade,
    key text not null,
    request_hash bytea not null,
    response jsonb,
    created_at timestamptz not null default now(),
    primary key (sender_id, key)
);
create index idempotency_keys_created_at on idempotency_keys (created_at);
