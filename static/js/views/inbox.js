// The inbox and the sent box: newest first, more rows on scroll, kept current by live events.

import { h, $, clear, formatTime } from "../dom.js";
import { get, errorText } from "../api.js";
import { bus } from "../bus.js";

const PAGE = 50;

class MessageList {
  constructor(box) {
    this.box = box;
    this.section = $(box);
    this.list = this.section.querySelector(".message-list");
    this.empty = this.section.querySelector(".list-empty");
    this.sentinel = this.section.querySelector(".list-more");
    this.rows = new Map();
    this.next = null;
    this.loading = false;
    this.generation = 0;
    this.observer = new IntersectionObserver((items) => {
      if (items.some((item) => item.isIntersecting)) this.loadMore();
    });
    this.observer.observe(this.sentinel);
  }

  reset() {
    this.generation += 1;
    this.rows.clear();
    clear(this.list);
    this.next = null;
    this.loading = false;
    this.updateEmpty();
  }

  async reload() {
    this.reset();
    await this.fetchPage(null);
  }

  async loadMore() {
    if (this.loading || !this.next || this.section.hidden) return;
    await this.fetchPage(this.next);
  }

  async fetchPage(cursor) {
    const generation = this.generation;
    this.loading = true;
    let path = `/api/messages?box=${this.box}&limit=${PAGE}`;
    if (cursor) path += `&before=${encodeURIComponent(cursor)}`;
    try {
      const page = await get(path);
      if (generation !== this.generation) return;
      for (const summary of page.messages) this.add(summary, false);
      this.next = page.next;
    } catch (error) {
      if (generation === this.generation) this.showError(errorText(error));
    } finally {
      if (generation === this.generation) this.loading = false;
    }
    this.updateEmpty();
    // A short first page may leave the sentinel in view: keep filling.
    if (generation === this.generation && this.next && !this.section.hidden) {
      requestAnimationFrame(() => {
        const rect = this.sentinel.getBoundingClientRect();
        if (rect.top < window.innerHeight) this.loadMore();
      });
    }
  }

  showError(text) {
    this.empty.hidden = false;
    this.empty.textContent = `Could not load the messages: ${text}`;
  }

  updateEmpty() {
    this.empty.textContent = this.box === "inbox" ? "No messages." : "Nothing sent yet.";
    this.empty.hidden = this.rows.size > 0 || this.loading;
  }

  // atTop: a live arrival; otherwise a row of a page, which is older than every row shown.
  add(summary, atTop) {
    if (this.rows.has(summary.id)) {
      this.update(summary);
      return;
    }
    const li = this.render(summary);
    this.rows.set(summary.id, { summary, li });
    if (atTop) {
      const newer = [...this.list.children].find(
        (row) => this.rows.get(row.dataset.id)?.summary.sent_at < summary.sent_at
      );
      this.list.insertBefore(li, newer || null);
    } else {
      this.list.appendChild(li);
    }
    this.updateEmpty();
  }

  update(summary) {
    const row = this.rows.get(summary.id);
    if (!row) return;
    const li = this.render(summary);
    row.li.replaceWith(li);
    row.li = li;
    row.summary = summary;
  }

  remove(id) {
    const row = this.rows.get(id);
    if (!row) return;
    const hadFocus = row.li.contains(document.activeElement);
    const next = row.li.nextElementSibling || row.li.previousElementSibling;
    row.li.remove();
    this.rows.delete(id);
    if (hadFocus && next) next.focus();
    this.updateEmpty();
  }

  markRead(id, readAt) {
    const row = this.rows.get(id);
    if (!row || this.box !== "inbox") return;
    row.summary.read_at = readAt || row.summary.read_at || new Date().toISOString();
    row.li.classList.remove("unread");
    row.li.querySelector(".state-label").textContent = "";
  }

  setReadCount(summary) {
    const row = this.rows.get(summary.id);
    if (!row) return;
    row.summary.read_count = summary.read_count;
    row.summary.recipient_count = summary.recipient_count;
    const cell = row.li.querySelector(".read-count");
    if (cell) cell.textContent = readCountText(row.summary);
  }

  sweepExpired(now) {
    for (const [id, row] of this.rows) {
      if (row.summary.expires_at && Date.parse(row.summary.expires_at) <= now) {
        this.remove(id);
        bus.emit("message-gone", { id, reason: "expired" });
      }
    }
  }

  render(m) {
    const unread = this.box === "inbox" && !m.read_at;
    const names = (m.attachments || []).map((a) => a.name).join(", ");
    const to = (m.recipients || []).map((r) => r.name).join(", ");
    const li = h(
      "li",
      {
        class: `message-row${unread ? " unread" : ""}${m.high_priority ? " high" : ""}`,
        dataset: { id: m.id },
        tabindex: "0",
      },
      h("span", { class: "sender" }, m.sender.display_name),
      this.box === "sent" && to ? h("span", { class: "recipients" }, `To: ${to}`) : null,
      h("span", { class: "subject" },
        m.high_priority ? h("span", { class: "badge", title: "High priority" }, "!") : null,
        m.subject),
      h("span", { class: "state-label visually-hidden" }, unread ? "unread" : ""),
      h("time", { class: "sent-at", datetime: m.sent_at }, formatTime(m.sent_at)),
      h("span", { class: "expires-at" }, m.expires_at ? `Expires ${formatTime(m.expires_at)}` : ""),
      h("span", { class: "attachments", hidden: !names, title: names },
        h("span", { class: "icon clip", "aria-hidden": "true" }, "📎"),
        h("span", { class: "visually-hidden" }, "Attachments: "),
        names),
      this.box === "sent" ? h("span", { class: "read-count" }, readCountText(m)) : null,
    );
    const open = () => bus.emit("open-message", { id: m.id, box: this.box });
    li.addEventListener("click", open);
    li.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        open();
      } else if (event.key === "ArrowDown" && li.nextElementSibling) {
        event.preventDefault();
        li.nextElementSibling.focus();
      } else if (event.key === "ArrowUp" && li.previousElementSibling) {
        event.preventDefault();
        li.previousElementSibling.focus();
      }
    });
    return li;
  }
}

function readCountText(m) {
  if (m.recipient_count === null || m.recipient_count === undefined) return "";
  return `${m.read_count ?? 0} of ${m.recipient_count} read`;
}

export const inbox = new MessageList("inbox");
export const sent = new MessageList("sent");

// Receipts for a sent message are fetched back, so the count is exact however they arrive.
const pendingCounts = new Map();

export function refreshReadCount(id) {
  if (!sent.rows.has(id) || pendingCounts.has(id)) return;
  const timer = setTimeout(async () => {
    pendingCounts.delete(id);
    try {
      sent.setReadCount(await get(`/api/messages/${id}`));
    } catch (error) {
      if (error.status === 404) sent.remove(id);
    }
  }, 50);
  pendingCounts.set(id, timer);
}

export function summaryOf(id) {
  return inbox.rows.get(id)?.summary || sent.rows.get(id)?.summary || null;
}

setInterval(() => {
  const now = Date.now();
  inbox.sweepExpired(now);
  sent.sweepExpired(now);
}, 2_000);
