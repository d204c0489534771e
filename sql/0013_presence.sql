-- Who is online, for the administrators' list of users. Each node writes the users it holds an
-- open socket of, and refreshes its row while it lives; a node that stops refreshing expires,
-- and whoever sweeps next folds its users' last sighting into `users.last_seen_at`. Nothing
-- here is written per message, and none of it is worth keeping across a crash (the nodes write
-- it again on their next refresh), so the tables write no WAL.
alter table users add column last_seen_at timestamptz;

create unlogged table presence_nodes (
    node_id uuid primary key,
    refreshed_at timestamptz not null,
    expires_at timestamptz not null
);

create unlogged table presence (
    node_id uuid not null,
    user_id uuid not null,
    primary key (node_id, user_id)
);
create index presence_user on presence (user_id);
