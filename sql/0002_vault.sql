-- Files: the bytes of uploads, of the vault's file entries and of messages' file attachments,
-- sealed chunk by chunk under the file's own data key. A file is shared by whatever refers to
-- it (a vault entry, a message) and deleted with the last reference; one nobody refers to is
-- deleted an hour after its upload began.
create table files (
    id uuid primary key,
    owner_id uuid not null references users (id) on delete cascade,  -- who uploaded it
    key_id text not null,
    wrapped_key bytea not null,
    name bytea not null,                    -- sealed
    content_type text not null,
    size bigint not null default 0,
    chunk_count integer not null default 0,
    complete boolean not null default false, -- every chunk is stored
    created_at timestamptz not null default now()
);
create index files_created_at on files (created_at);

create table file_chunks (
    file_id uuid not null references files (id) on delete cascade,
    n integer not null,
    data bytea not null,                    -- sealed: nothing for PostgreSQL to compress
    primary key (file_id, n)
);
alter table file_chunks alter column data set storage external;

-- Each user's vault: folders (nested) and entries. Every name and secret field is sealed under
-- the row's own data key.
create table vault_folders (
    id uuid primary key,
    owner_id uuid not null references users (id) on delete cascade,
    parent_id uuid references vault_folders (id) on delete cascade,
    key_id text not null,
    wrapped_key bytea not null,
    name bytea not null,
    created_at timestamptz not null default now()
);
create index vault_folders_owner on vault_folders (owner_id);
create index vault_folders_parent on vault_folders (parent_id);

create table vault_entries (
    id uuid primary key,
    owner_id uuid not null references users (id) on delete cascade,
    folder_id uuid references vault_folders (id) on delete cascade,
    kind text not null check (kind in ('credential', 'note', 'file')),
    key_id text not null,
    wrapped_key bytea not null,
    fields bytea not null,                  -- sealed JSON: title, username, password, url, notes
    file_id uuid references files (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index vault_entries_owner on vault_entries (owner_id);
create index vault_entries_folder on vault_entries (folder_id);
create index vault_entries_file on vault_entries (file_id) where file_id is not null;

-- A message's attachments, sealed under the message's data key: gone with the message.
create table message_attachments (
    id uuid primary key,
    message_id uuid not null references messages (id) on delete cascade,
    position integer not null,
    kind text not null check (kind in ('credential', 'entry', 'folder', 'file')),
    name bytea not null,
    size bigint,
    content bytea,                          -- sealed JSON: a credential, an entry, a folder tree
    file_id uuid references files (id)
);
create index message_attachments_message on message_attachments (message_id, position);

-- Every file a message refers to: its file attachments and the file entries inside its copies.
create table message_files (
    message_id uuid not null references messages (id) on delete cascade,
    file_id uuid not null references files (id),
    primary key (message_id, file_id)
);
create index message_files_file on message_files (file_id);
