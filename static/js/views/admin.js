// Administration: users (send setting, shareable links, admin flag, disabling, password) and groups.

import { h, $, clear, report, wireDialog, openDialog, confirmTwice } from "../dom.js";
import { get, post, patch, put, del, errorText } from "../api.js";
import { state } from "../state.js";

const SETTINGS = [
  ["attach", "with attachments"],
  ["no-attach", "without attachments"],
  ["none", "not allowed"],
];

let users = [];
let groups = [];
let resetting = null;

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

function nameOf(id) {
  const user = users.find((u) => u.id === id);
  return user ? user.display_name : "(unknown user)";
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
  return h("tr", { dataset: { id: user.id }, class: user.disabled ? "is-disabled" : "" },
    h("td", {}, h("span", { class: "display-name" }, user.display_name), " ",
      h("span", { class: "extra" }, `@${user.username}`)),
    h("td", {}, select),
    h("td", {}, share),
    h("td", {}, admin),
    h("td", {}, disabled),
    h("td", {}, reset));
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
  const members = h("ul", { class: "members" }, group.member_ids.map((id) => {
    const remove = h("button", { type: "button", class: "remove small", "aria-label": `Remove ${nameOf(id)} from ${group.name}` }, "×");
    remove.addEventListener("click", () =>
      setMembers(group, group.member_ids.filter((m) => m !== id), `removed ${nameOf(id)}`));
    return h("li", { class: "chip", dataset: { id } }, h("span", { class: "chip-name" }, nameOf(id)), remove);
  }));
  const outside = users.filter((u) => !group.member_ids.includes(u.id));
  const pick = h("select", { class: "add-member-select", "aria-label": `Add a member to ${group.name}` },
    h("option", { value: "" }, "Add a member…"),
    outside.map((u) => h("option", { value: u.id }, `${u.display_name} (@${u.username})`)));
  const add = h("button", { type: "button", class: "add-member small" }, "Add");
  add.addEventListener("click", () => {
    if (pick.value) setMembers(group, [...group.member_ids, pick.value], `added ${nameOf(pick.value)}`);
  });
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
    h("td", {}, members, h("div", { class: "row" }, pick, add)),
    h("td", {}, remove));
}

function renderUsers() {
  const body = clear($("users").tBodies[0]);
  for (const user of users) body.appendChild(userRow(user));
  const box = clear($("new-group-members"));
  for (const user of users.filter((u) => !u.disabled)) {
    const id = `new-group-member-${user.id}`;
    box.appendChild(h("label", { class: "check", for: id },
      h("input", { type: "checkbox", id, value: user.id }), ` ${user.display_name}`));
  }
}

function renderGroups() {
  const body = clear($("groups").tBodies[0]);
  for (const group of groups) body.appendChild(groupRow(group));
}

export async function loadAdmin() {
  if (!state.me || !state.me.is_admin) return;
  try {
    const [u, g] = await Promise.all([get("/api/admin/users"), get("/api/admin/groups")]);
    users = u.users.sort((a, b) => a.display_name.localeCompare(b.display_name));
    groups = g.groups.sort((a, b) => a.name.localeCompare(b.name));
  } catch (error) {
    report(status, errorText(error), true);
    return;
  }
  renderUsers();
  renderGroups();
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
    await loadAdmin();
  } catch (error) {
    report(status, errorText(error), true);
  }
}

async function createGroup(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const memberIds = [...$("new-group-members").querySelectorAll("input:checked")].map((i) => i.value);
  try {
    const group = await post("/api/admin/groups", { name: form.elements.name.value.trim(), member_ids: memberIds });
    form.reset();
    report(status, `Created the group ${group.name} with ${group.member_ids.length} members.`);
    await loadAdmin();
  } catch (error) {
    report(status, errorText(error), true);
  }
}

export function resetAdmin() {
  users = [];
  groups = [];
  clear($("users").tBodies[0]);
  clear($("groups").tBodies[0]);
  report(status, "");
}

export function initAdmin() {
  wireDialog($("reset-dialog"));
  $("reset-form").addEventListener("submit", confirmReset);
  $("new-user").addEventListener("submit", createUser);
  $("new-group").addEventListener("submit", createGroup);
}
