-- Administrators' announcements to every user (system messages), and who dismissed which.
-- Subject and body are AES-256-GCM ciphertexts under the row's own data key, stored wrapped
-- under the master key `key_id` (re-wrapped by `realtime rotate-key`): deleting the row
-- deletes the key. A withdrawn message is deleted; an ended one is deleted by the expirer.
create table system_messages (
    id uuid primary key,
    author_id uuid references users (id) on delete set null,
    mode text not null check (mode in ('dismissible', 'reminder')),
    created_at timestamptz not null default now(),
    ends_at timestamptz,
    key_id text not null,
    wrapped_key bytea not null,
    subject bytea not null,
    body bytea not null
);
create index system_messages_ends_at on system_messages (ends_at) where ends_at is not null;

-- A dismissal hides a dismissible message from its user for good; a reminder only from the
-- sessions that were open when it was dismissed (each later sign-in shows it again).
create table system_message_dismissals (
    system_message_id uuid not null references system_messages (id) on delete cascade,
    user_id uuid not null references users (id) on delete cascade,
    dismissed_at timestamptz not null default now(),
    primary key (system_message_id, user_id)
);
create index system_message_dismissals_user on system_message_dismissals (user_id);
