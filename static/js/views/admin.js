// Administration: users (send setting, shareable links, admin flag, disabling, password), found
// by search a page at a time with who is online, and groups, whose members are picked by search.

import { h, $, clear, report, wireDialog, openDialog, confirmTwice, formatTime } from "../dom.js";
import { get, post, patch, put, del, errorText } from "../api.js";
import { state } from "../state.js";
import { userFinder } from "./user-finder.js";

const PAGE = 50;
const SEARCH_DEBOUNCE_MS = 150;
// The filter boxes, by the query parameter each sets.
const ONLY = [["online", "user-only-online", "1"], ["admin", "user-only-admin", "1"],
  ["disabled", "user-only-disabled", "1"], ["can_send", "user-only-cannot-send", "0"]];

const SETTINGS = [
  ["attach", "with attachments"],
  ["no-attach", "without attachments"],
  ["none", "not allowed"],
];

let users = []; // the page shown
let groups = [];
let resetting = null;
let cursors = [""]; // the cursor of each page seen so far; the last one is the page shown
let nextCursor = null;
let asked = 0;
let searchTimer = null;
let newGroupMembers = []; // [{id, display_name, username}]

const status = $("admin-status");

function settingOf(user) {
  if (!user.can_send) return "none";
  return user.can_attach ? "attach" : "no-attach";
}

function flagsOf(setting) {
  if (setting === "attach") return { can_send: true, can_attach: true };
  if (setting === "no-attach") return { can_send: true, can_attach: false };
  return { can_send: false, can_attach: false };
}

async function change(user, body, describe, revert) {
  try {
    const updated = await patch(`/api/admin/users/${user.id}`, body);
    Object.assign(user, updated);
    report(status, `${user.display_name}: ${describe}.`);
  } catch (error) {
    revert();
    report(status, `${user.display_name}: ${errorText(error)}`, true);
  }
}

function userRow(user) {
  const select = h("select", { class: "send-setting", "aria-label": `Sending for ${user.display_name}` },
    SETTINGS.map(([value, label]) => h("option", { value }, label)));
  select.value = settingOf(user);
  select.addEventListener("change", () => {
    const value = select.value;
    const label = SETTINGS.find(([v]) => v === value)[1];
    change(user, flagsOf(value), `sending is now ${label}`, () => { select.value = settingOf(user); });
  });
  const share = h("input", { type: "checkbox", class: "share-links", checked: user.can_share_links, "aria-label": `${user.display_name} may create shareable links` });
  share.addEventListener("change", () => {
    const on = share.checked;
    change(user, { can_share_links: on },
      on ? "may now create shareable links" : "may no longer create shareable links",
      () => { share.checked = user.can_share_links; });
  });
  const admin = h("input", { type: "checkbox", class: "is-admin", checked: user.is_admin, "aria-label": `${user.display_name} is an administrator` });
  admin.addEventListener("change", () => {
    const on = admin.checked;
    change(user, { is_admin: on }, on ? "now an administrator" : "no longer an administrator",
      () => { admin.checked = user.is_admin; });
  });
  const disabled = h("input", { type: "checkbox", class: "disabled", checked: user.disabled, "aria-label": `${user.display_name} is disabled` });
  disabled.addEventListener("change", () => {
    const on = disabled.checked;
    change(user, { disabled: on }, on ? "disabled, and signed out everywhere" : "enabled again",
      () => { disabled.checked = user.disabled; });
  });
  const reset = h("button", { type: "button", class: "reset-password small", "aria-label": `Reset the password of ${user.display_name}` }, "Reset password");
  reset.addEventListener("click", () => openReset(user));
  return h("tr", { dataset: { id: user.id, online: user.online ? "1" : "0" }, class: user.disabled ? "is-disabled" : "" },
    h("td", {}, h("span", { class: "display-name" }, user.display_name), " ",
      h("span", { class: "extra" }, `@${user.username}`)),
    h("td", { class: "seen" }, seenOf(user)),
    h("td", {}, select),
    h("td", {}, share),
    h("td", {}, admin),
    h("td", {}, disabled),
    h("td", {}, reset));
}

function seenOf(user) {
  if (user.online) return h("span", { class: "online", title: `seen ${formatTime(user.last_seen_at)}` }, "online");
  if (!user.last_seen_at) return h("span", { class: "extra" }, "never");
  return h("span", { class: "extra", title: user.last_seen_at }, formatTime(user.last_seen_at));
}

function openReset(user) {
  resetting = user;
  $("reset-who").textContent = `A new password for ${user.display_name} (@${user.username}). Their sessions end.`;
  $("reset-password").value = "";
  report($("reset-error"), "");
  openDialog($("reset-dialog"));
  $("reset-password").focus();
}

async function confirmReset(event) {
  event.preventDefault();
  if (!resetting) return;
  const user = resetting;
  try {
    await patch(`/api/admin/users/${user.id}`, { password: $("reset-password").value });
    $("reset-dialog").close();
    report(status, `${user.display_name}: password reset; their sessions have ended.`);
  } catch (error) {
    report($("reset-error"), errorText(error), true);
  }
}

async function setMembers(group, memberIds, describe) {
  try {
    const updated = await put(`/api/admin/groups/${group.id}/members`, { member_ids: memberIds });
    Object.assign(group, updated);
    report(status, `${group.name}: ${describe}.`);
  } catch (error) {
    report(status, `${group.name}: ${errorText(error)}`, true);
  }
  renderGroups();
}

function groupRow(group) {
  const names = new Map(group.members.map((m) => [m.id, m.display_name]));
  const byName = [...group.members].sort((a, b) => a.display_name.localeCompare(b.display_name));
  const members = h("ul", { class: "members" }, byName.map((member) => {
    const remove = h("button", { type: "button", class: "remove small", "aria-label": `Remove ${member.display_name} from ${group.name}` }, "×");
    remove.addEventListener("click", () =>
      setMembers(group, group.member_ids.filter((m) => m !== member.id), `removed ${member.display_name}`));
    return h("li", { class: "chip", dataset: { id: member.id } },
      h("span", { class: "chip-name", title: `@${member.username}` }, member.display_name), remove);
  }));
  const finder = userFinder({
    label: `Add a member to ${group.name}`,
    placeholder: "Add a member…",
    query: { disabled: "0" },
    skip: (user) => names.has(user.id),
    onPick: (user) => setMembers(group, [...group.member_ids, user.id], `added ${user.display_name}`),
  });
  finder.classList.add("add-member");
  const remove = h("button", { type: "button", class: "delete-group small danger", "aria-label": `Delete group ${group.name}` }, "Delete");
  confirmTwice(remove, async () => {
    try {
      await del(`/api/admin/groups/${group.id}`);
      report(status, `Deleted the group ${group.name}.`);
      groups = groups.filter((g) => g.id !== group.id);
      renderGroups();
    } catch (error) {
      report(status, errorText(error), true);
    }
  }, "Delete the group?");
  return h("tr", { dataset: { id: group.id } },
    h("td", { class: "group-name" }, group.name),
    h("td", {}, members, finder),
    h("td", {}, remove));
}

function renderUsers() {
  const body = clear($("users").tBodies[0]);
  for (const user of users) body.appendChild(userRow(user));
  $("users-empty").hidden = users.length > 0;
  const page = cursors.length;
  $("users-page").textContent = users.length
    ? `Page ${page}: ${(page - 1) * PAGE + 1}–${(page - 1) * PAGE + users.length}` : "";
  $("users-previous").disabled = page <= 1;
  $("users-next").disabled = !nextCursor;
}

function renderNewGroupMembers() {
  const box = clear($("new-group-members"));
  for (const member of newGroupMembers) {
    const remove = h("button", { type: "button", class: "remove", "aria-label": `Remove ${member.display_name}` }, "×");
    remove.addEventListener("click", () => {
      newGroupMembers = newGroupMembers.filter((m) => m.id !== member.id);
      renderNewGroupMembers();
    });
    box.appendChild(h("span", { class: "chip", dataset: { id: member.id } },
      h("span", { class: "chip-name", title: `@${member.username}` }, member.display_name), remove));
  }
}

function renderGroups() {
  const body = clear($("groups").tBodies[0]);
  for (const group of groups) body.appendChild(groupRow(group));
}

function userQuery() {
  const params = new URLSearchParams({ limit: String(PAGE) });
  const q = $("user-query").value.trim();
  if (q) params.set("q", q);
  for (const [name, id, value] of ONLY) {
    if ($(id).checked) params.set(name, value);
  }
  const after = cursors[cursors.length - 1];
  if (after) params.set("after", after);
  return params;
}

// Show the page whose cursor is last in `cursors`; an answer overtaken by a later ask is dropped.
async function loadUsers() {
  const ticket = ++asked;
  let page;
  try {
    page = await get(`/api/admin/users?${userQuery()}`);
  } catch (error) {
    if (ticket === asked) report(status, errorText(error), true);
    return;
  }
  if (ticket !== asked) return;
  users = page.users;
  nextCursor = page.next;
  renderUsers();
}

function searchAgain() {
  cursors = [""];
  clearTimeout(searchTimer);
  searchTimer = setTimeout(loadUsers, SEARCH_DEBOUNCE_MS);
}

export async function loadAdmin() {
  if (!state.me || !state.me.is_admin) return;
  cursors = [""];
  try {
    const g = await get("/api/admin/groups");
    groups = g.groups.sort((a, b) => a.name.localeCompare(b.name));
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  renderGroups();
  await loadUsers();
}

async function createUser(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = {
    username: form.elements.username.value.trim(),
    password: form.elements.password.value,
    is_admin: form.elements.is_admin.checked,
    ...flagsOf(form.elements.send_setting.value),
  };
  const display = form.elements.display_name.value.trim();
  if (display) body.display_name = display;
  try {
    const user = await post("/api/admin/users", body);
    form.reset();
    report(status, `Created the user ${user.display_name} (@${user.username}).`);
    await loadUsers();
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function createGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const memberIds = newGroupMembers.map((m) => m.id);
  try {
    const group = await post("/api/admin/groups", { name: form.elements.name.value.trim(), member_ids: memberIds });
    form.reset();
    newGroupMembers = [];
    renderNewGroupMembers();
    const n = group.member_ids.length;
    report(status, `Created the group ${group.name} with ${n} ${n === 1 ? "member" : "members"}.`);
    await loadAdmin();
  } catch (error) {
    report(status, errorText(error), true);
  }
}

export function resetAdmin() {
  users = [];
  groups = [];
  cursors = [""];
  nextCursor = null;
  newGroupMembers = [];
  renderNewGroupMembers();
  $("user-search").reset();
  clear($("users").tBodies[0]);
  clear($("groups").tBodies[0]);
  report(status, "");
}

export function initAdmin() {
  wireDialog($("reset-dialog"));
  $("reset-form").addEventListener("submit", confirmReset);
  $("new-user").addEventListener("submit", createUser);
  $("new-group").addEventListener("submit", createGroup);
  $("user-search").addEventListener("submit", (event) => event.preventDefault());
  $("user-query").addEventListener("input", searchAgain);
  for (const [, id] of ONLY) $(id).addEventListener("change", searchAgain);
  $("users-next").addEventListener("click", () => {
    if (!nextCursor) return;
    cursors.push(nextCursor);
    loadUsers();
  });
  $("users-previous").addEventListener("click", () => {
    if (cursors.length <= 1) return;
    cursors.pop();
    loadUsers();
  });
  $("new-group-finder").appendChild(userFinder({
    label: "Add a member to the new group",
    placeholder: "Add a member…",
    query: { disabled: "0" },
    skip: (user) => newGroupMembers.some((m) => m.id === user.id),
    onPick: (user) => {
      newGroupMembers.push({ id: user.id, display_name: user.display_name, username: user.username });
      renderNewGroupMembers();
    },
  }));
}
