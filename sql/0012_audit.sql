-- The audit trail: what happened, never what was said. A record is written by its action's own
-- statement or transaction, unchained (`position` null); one node at a time chains the committed
-- ones shortly after, in the order it finds them: each gets the next position, the hash of the
-- record before it and its own hash (SHA-256 over that and its fields). `audit_chain` holds the
-- head of the chain and where it starts since records were pruned.
create table audit_records (
    id bigint generated always as identity primary key,
    at timestamptz not null default statement_timestamp(),
    actor_id uuid,
    action text not null,
    target_kind text,
    target_id uuid,
    address text,
    outcome text not null,
    detail jsonb not null default '{}',
    position bigint unique,
    prev_hash bytea,
    hash bytea
);
create index audit_records_unchained on audit_records (id) where position is null;
create index audit_records_actor on audit_records (actor_id, id);
-- Records are written in time order: a block range index finds a time range for almost nothing.
create index audit_records_at on audit_records using brin (at);

create table audit_chain (
    only_row boolean primary key default true check (only_row),
    last_position bigint not null default 0,
    last_hash bytea not null default ''::bytea,
    first_position bigint not null default 1,
    first_prev_hash bytea not null default ''::bytea
);
insert into audit_chain default values;
