-- The organisation's settings: one row, read with every request's authentication, so that a
-- change holds at once on every node. A user's effective rights are the lower of these and
-- their own flags.
create table organisation_settings (
    only_row boolean primary key default true check (only_row),
    send_messages text not null default 'with_attachments'
        check (send_messages in ('with_attachments', 'without_attachments', 'not_allowed')),
    share_links boolean not null default true,
    max_file_mb integer not null default 25 check (max_file_mb between 1 and 25),
    max_lifetime_seconds bigint check (max_lifetime_seconds > 0),
    updated_at timestamptz not null default now()
);
insert into organisation_settings default values;
