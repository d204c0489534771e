// Administration: the audit trail, filtered by user, action and time, paged, exported.

import { h, $, clear, report, formatTime } from "../dom.js";
import { get, errorText } from "../api.js";
import { state } from "../state.js";
import { userFinder } from "./user-finder.js";

const status = $("admin-status");
const EXPORT_PAGES = 50; // an export takes at most 5,000 records: narrow the filter for more
let next = null;

function query(after) {
  const form = $("audit-filter");
  const params = new URLSearchParams();
  for (const name of ["user", "action"]) {
    if (form.elements[name].value) params.set(name, form.elements[name].value);
  }
  for (const name of ["since", "until"]) {
    const value = form.elements[name].value;
    if (value) params.set(name, new Date(value).toISOString());
  }
  if (after) params.set("after", after);
  return params;
}

function describe(record) {
  const parts = Object.entries(record.detail || {}).map(([k, v]) => `${k}: ${v}`);
  return parts.join(", ");
}

function row(record) {
  const target = record.target ? `${record.target.kind} ${record.target.id.slice(0, 8)}` : "";
  return h("tr", { dataset: { id: record.id, action: record.action, outcome: record.outcome } },
    h("td", {}, formatTime(record.at)),
    h("td", { class: "audit-actor" }, record.actor ? (record.actor.username || record.actor.id) : "server"),
    h("td", { class: "audit-action" }, record.action),
    h("td", { class: `audit-outcome ${record.outcome}` }, record.outcome),
    h("td", { title: record.target ? record.target.id : "" }, target),
    h("td", {}, record.address || ""),
    h("td", { class: "extra" }, describe(record)));
}

async function show(after) {
  try {
    const page = await get(`/api/admin/audit?${query(after)}`);
    const body = $("audit").tBodies[0];
    if (!after) clear(body);
    for (const record of page.records) body.appendChild(row(record));
    next = page.next;
    $("audit-more").hidden = !next;
    $("audit-empty").hidden = body.rows.length > 0;
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function exportRecords() {
  const lines = [];
  let after = null;
  try {
    for (let n = 0; n < EXPORT_PAGES; n += 1) {
      const page = await get(`/api/admin/audit?${query(after)}`);
      for (const record of page.records) lines.push(JSON.stringify(record));
      after = page.next;
      if (!after) break;
    }
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  const blob = new Blob([lines.join("\n") + "\n"], { type: "application/x-ndjson" });
  const link = h("a", { href: URL.createObjectURL(blob), download: "audit.jsonl" });
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  report(status, `Exported ${lines.length} audit records${after ? " (the newest; narrow the filter for the rest)" : ""}.`);
}

// The user filter: one user picked by search, shown as a chip that clears it.
function chooseUser(user) {
  $("audit-user").value = user ? user.id : "";
  const box = clear($("audit-user-chosen"));
  if (!user) {
    box.appendChild(h("span", { class: "hint" }, "anyone"));
    return;
  }
  const remove = h("button", { type: "button", class: "remove", "aria-label": `Show everyone's records, not only ${user.username}'s` }, "×");
  remove.addEventListener("click", () => chooseUser(null));
  box.appendChild(h("span", { class: "chip", dataset: { id: user.id } },
    h("span", { class: "chip-name" }, user.username), remove));
}

export async function loadAuditAdmin() {
  if (!state.me || !state.me.is_admin) return;
  await show(null);
}

export function resetAuditAdmin() {
  $("audit-filter").reset();
  chooseUser(null);
  clear($("audit").tBodies[0]);
  next = null;
  $("audit-more").hidden = true;
}

export function initAuditAdmin() {
  $("audit-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    show(null);
  });
  $("audit-more").addEventListener("click", () => { if (next) show(next); });
  $("audit-export").addEventListener("click", exportRecords);
  $("audit-user-finder").appendChild(userFinder({
    label: "Show the records of one user",
    placeholder: "Find a user…",
    onPick: (user) => chooseUser(user),
  }));
}
