// The Links view: the caller's live links, newest first, with their views as they happen, and
// Revoke. A link that opens no more shows why for a moment, then its row goes.

import { h, $, clear, report, formatTime, confirmTwice } from "../dom.js";
import { get, del, errorText } from "../api.js";

const GONE_SHOWN_MS = 2_500; // how long a gone link's row stays to say why
const FLASH_MS = 2_000;
const REASONS = {
  expired: "Expired",
  used: "All views used",
  revoked: "Revoked",
  burned: "Destroyed after wrong passphrases",
};

const section = $("links");
const list = $("link-list");
const statusBox = $("links-status");
const rows = new Map(); // id → {link, li}
let loaded = false; // the list holds what the server had; frames may then update it
let loading = null; // the reload running, if any
let again = false; // a frame came during a reload: load once more after it
let generation = 0;

function viewsText(link) {
  return `${link.views} / ${link.max_views}`;
}

function fact(label, className, value) {
  return h("div", {}, h("dt", {}, label), h("dd", { class: className }, value));
}

function timeOrNever(iso, never) {
  return iso ? h("time", { datetime: iso }, formatTime(iso)) : never;
}

function render(link) {
  const revoke = h("button", { type: "button", class: "danger small revoke", "aria-label": `Revoke “${link.subject}”` }, "Revoke");
  confirmTwice(revoke, () => revokeLink(link.id), "Click again to revoke");
  const emailed = link.emailed_to || [];
  return h("li", { class: "link-row", dataset: { id: link.id } },
    h("div", { class: "link-main" },
      h("span", { class: "subject" },
        link.has_passphrase
          ? h("span", { class: "lock", title: "Asks for a passphrase" },
            h("span", { class: "icon lock-icon", "aria-hidden": "true" }, "🔒"),
            h("span", { class: "visually-hidden" }, "Asks for a passphrase: "))
          : null,
        link.subject),
      emailed.length ? h("span", { class: "emailed", title: emailed.join(", ") }, `Emailed to ${emailed.join(", ")}`) : null),
    h("dl", { class: "link-facts" },
      fact("Created", "created-at", timeOrNever(link.created_at, "")),
      fact("Expires", "expires-at", timeOrNever(link.expires_at, "")),
      fact("Views", "views", viewsText(link)),
      fact("Last viewed", "last-viewed", timeOrNever(link.last_viewed_at, "Not yet"))),
    h("p", { class: "gone-reason", hidden: true }),
    h("div", { class: "link-actions" }, revoke));
}

function updateEmpty() {
  $("links-empty").hidden = !loaded || rows.size > 0;
}

export function resetLinks() {
  generation += 1;
  rows.clear();
  clear(list);
  loaded = false;
  loading = null;
  again = false;
  report(statusBox, "");
  updateEmpty();
}

async function load() {
  const mine = generation;
  let answer;
  try {
    answer = await get("/api/links");
  } catch (error) {
    if (mine === generation) report(statusBox, `Could not load your links: ${errorText(error)}`, true);
    return;
  }
  if (mine !== generation) return;
  rows.clear();
  clear(list);
  for (const link of answer.links) {
    const li = render(link);
    rows.set(link.id, { link, li });
    list.appendChild(li);
  }
  loaded = true;
  updateEmpty();
}

// Loads the list anew; a frame that comes meanwhile makes it load once more after.
export async function reloadLinks() {
  if (loading) {
    again = true;
    return loading;
  }
  const mine = generation;
  loading = (async () => {
    do {
      again = false;
      await load();
    } while (again && mine === generation);
  })();
  try {
    await loading;
  } finally {
    if (mine === generation) loading = null;
  }
  return undefined;
}

// A frame about a link this list does not show (yet): the list is behind, load it.
function unknown(id) {
  if (loading) again = true;
  else if (loaded && !rows.has(id)) reloadLinks();
}

function flash(li) {
  li.classList.remove("flash");
  void li.offsetWidth; // restarts the animation
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), FLASH_MS);
}

// `link.viewed`: the views and the last view of that row.
export function linkViewed(frame) {
  const row = rows.get(frame.link_id);
  if (!row || loading) {
    unknown(frame.link_id);
    return;
  }
  const link = row.link;
  if (typeof frame.views_left === "number") link.views = Math.max(link.views, link.max_views - frame.views_left);
  link.last_viewed_at = frame.viewed_at || link.last_viewed_at;
  row.li.querySelector(".views").textContent = viewsText(link);
  clear(row.li.querySelector(".last-viewed")).appendChild(timeOrNever(link.last_viewed_at, "Not yet"));
  flash(row.li);
  if (!section.hidden) report(statusBox, `“${link.subject}” was viewed (${viewsText(link)}).`);
}

// `link.deleted` (or a revoke or expiry seen here): say why on the row, then remove it.
export function linkGone(id, reason) {
  if (loading) again = true;
  const row = rows.get(id);
  if (!row || row.li.classList.contains("gone")) return;
  const why = REASONS[reason] || "Gone";
  const hadFocus = row.li.contains(document.activeElement);
  row.li.classList.add("gone");
  row.li.querySelector(".link-actions").remove();
  const note = row.li.querySelector(".gone-reason");
  note.textContent = why;
  note.hidden = false;
  if (!section.hidden) report(statusBox, `“${row.link.subject}”: ${why.toLowerCase()}; the link opens no more.`);
  if (hadFocus) $("links-title").focus();
  setTimeout(() => {
    if (rows.get(id) !== row) return;
    row.li.remove();
    rows.delete(id);
    updateEmpty();
  }, GONE_SHOWN_MS);
}

async function revokeLink(id) {
  try {
    await del(`/api/links/${id}`);
  } catch (error) {
    if (error.status !== 404) {
      report(statusBox, errorText(error), true);
      return;
    }
  }
  linkGone(id, "revoked");
}

function sweepExpired() {
  const now = Date.now();
  for (const [id, row] of rows) {
    if (Date.parse(row.link.expires_at) <= now) linkGone(id, "expired");
  }
}

export function initLinks({ newLink }) {
  $("links-new").addEventListener("click", newLink);
  setInterval(sweepExpired, 2_000);
  updateEmpty();
}
