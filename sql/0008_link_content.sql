-- Shareable links, completed: who may create them, their attachments, when their rows go.
--
-- A link's attachments are credentials and files. Their names and a credential's fields are
-- sealed under the link's key (derived from its token, never stored). A file's chunks are
-- sealed under a data key of the file's own, itself sealed under the link's key: the master key
-- opens none of them. Every row goes with its link.
--
-- `due_at` is when the link's rows are deleted: its expiry, or, after a last view of a link
-- with files, the end of that view's download window if sooner. A link ended otherwise
-- (revoked, burned, its last view of a link without files) is deleted at once.
-- `file_bytes` counts against its creator's stored bytes; `emailed_to` holds the addresses it
-- was sent to (Send by email), sealed for the creator like its listed subject.
alter table users add column can_share_links boolean not null default true;

alter table links add column due_at timestamptz;
update links set due_at = expires_at;
alter table links alter column due_at set not null;
alter table links add column file_bytes bigint not null default 0 check (file_bytes >= 0);
alter table links add column emailed_to bytea;

drop index links_due;
create index links_due on links (due_at);

create table link_attachments (
    id uuid primary key,
    link_id uuid not null references links (id) on delete cascade,
    position smallint not null,
    kind text not null check (kind in ('credential', 'file')),
    name bytea not null,
    content bytea,
    size bigint check (size >= 0),
    content_type text,
    chunk_count integer check (chunk_count >= 1),
    file_key bytea,
    unique (link_id, position),
    check ((kind = 'credential') = (content is not null)),
    check ((kind = 'file') = (file_key is not null and chunk_count is not null
                               and size is not null and content_type is not null))
);

create table link_chunks (
    attachment_id uuid not null references link_attachments (id) on delete cascade,
    n integer not null check (n >= 0),
    data bytea not null,
    primary key (attachment_id, n)
);
