-- Each user's unread count, kept beside the seq counter by the statements that append the
-- user's events (a new message, a read, a delete, a recall, an expiry), so that every event
-- carries the count as it was right after it. It counts the messages kept unread in the inbox,
-- those whose expiry has passed included until the expirer deletes them (with an event).
alter table event_counters add column unread bigint not null default 0 check (unread >= 0);

update event_counters c set unread = kept.unread
from (select user_id, count(*) as unread from message_recipients
      where read_at is null and deleted_at is null
      group by user_id) as kept
where kept.user_id = c.user_id;
