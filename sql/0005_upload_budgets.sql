-- Bytes each user is uploading at once, across every node: one row per upload in progress,
-- holding its declared length (or the largest file allowed). A row outlives a node that died
-- mid-upload only until `expires_at`; a live upload pushes it forward as bytes arrive.
create table upload_reservations (
    id uuid primary key,
    user_id uuid not null references users (id) on delete cascade,
    bytes bigint not null check (bytes >= 0),
    expires_at timestamptz not null
);
create index upload_reservations_user on upload_reservations (user_id);

-- The bytes a user keeps are summed over the files they own.
create index files_owner on files (owner_id);
