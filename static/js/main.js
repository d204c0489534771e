// Wires the views together: login, the header, the live events and navigation.

import { $, report, setText } from "./dom.js";
import { get, post, errorText } from "./api.js";
import { bus } from "./bus.js";
import { state, setMe, setUnread } from "./state.js";
import { showView } from "./nav.js";
import * as live from "./live.js";
import { inbox, sent, refreshReadCount } from "./views/inbox.js";
import { initMessage, openMessage, messageGone, messageRead } from "./views/message.js";
import { initPopup, popUp, popupGone, resetPopups } from "./views/popup.js";
import { initCompose, openComposer, resetComposer } from "./views/compose.js";
import { LINK } from "./views/compose-mode.js";
import { initLinks, reloadLinks, resetLinks, linkViewed, linkGone } from "./views/links.js";
import { initVault, loadVault, resetVault } from "./views/vault.js";
import { initAdmin, loadAdmin, resetAdmin } from "./views/admin.js";
import { initSystemAdmin, loadSystemAdmin, resetSystemAdmin } from "./views/system-admin.js";
import { initOrganisationAdmin, loadOrganisationAdmin, resetOrganisationAdmin } from "./views/organisation-admin.js";
import { initAuditAdmin, loadAuditAdmin, resetAuditAdmin } from "./views/audit-admin.js";
import { showSystem, addSystem, removeSystem, reloadSystem, resetSystem } from "./views/system-banner.js";

let liveState = "offline";
let helloSeen = false; // a hello since signing in: it lists the system messages itself
// The seq whose unread count the dot shows: hello's, then each event's. A replayed frame that a
// live one overtook carries an older count and leaves the dot alone.
let unreadAsOf = 0;

function countFrom(frame) {
  if (typeof frame.unread !== "number" || typeof frame.seq !== "number") return;
  if (frame.seq <= unreadAsOf) return;
  unreadAsOf = frame.seq;
  setUnread(frame.unread);
}

function showLogin(message = "") {
  $("app-header").hidden = true;
  $("main").hidden = true;
  $("login-view").hidden = false;
  report($("login-error"), message);
  $("login-username").focus();
}

// The header follows the account's effective rights, which the organisation's settings may
// change while the tab is open.
function showRights(me) {
  if (!me) return;
  setText($("whoami"), me.display_name);
  $("nav-admin").hidden = !me.is_admin;
  $("nav-links").hidden = !me.can_share_links;
  // Sending a copy of a vault item attaches it: not offered without the right (CSS hides it).
  document.body.toggleAttribute("data-no-attach", !me.can_attach);
}

async function enter(me) {
  setMe(me);
  $("login-view").hidden = true;
  $("app-header").hidden = false;
  $("main").hidden = false;
  setUnread(0);
  showView("inbox", { focus: false });
  live.start();
  inbox.reload();
  sent.reload();
  loadUnread();
  helloSeen = false;
  get("/api/system-messages").then((answer) => {
    if (!helloSeen) showSystem(answer.messages);
  }, () => {});
}

function leave(message = "") {
  live.stop();
  state.me = null;
  document.body.removeAttribute("data-no-attach");
  inbox.reset();
  sent.reset();
  resetPopups();
  resetComposer();
  resetLinks();
  resetVault();
  resetAdmin();
  resetSystemAdmin();
  resetOrganisationAdmin();
  resetAuditAdmin();
  resetSystem();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  setUnread(0);
  showLogin(message);
}

async function loadUnread() {
  try {
    const unread = await get("/api/unread");
    if (liveState !== "live") setUnread(unread.count);
    for (const summary of [...unread.high_priority].reverse()) popUp(summary);
  } catch {
    // the websocket's hello carries the same
  }
}

function initLogin() {
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button[type=submit]");
    report($("login-error"), "");
    button.disabled = true;
    try {
      const answer = await post("/api/auth/login", {
        username: form.elements.username.value.trim(),
        password: form.elements.password.value,
      }, { quiet401: true });
      form.elements.password.value = "";
      await enter(answer.user);
    } catch (error) {
      report($("login-error"), error.status === 401 ? "Wrong username or password." : errorText(error));
      form.elements.password.select();
    } finally {
      button.disabled = false;
    }
  });
  $("logout").addEventListener("click", async () => {
    try {
      await post("/api/auth/logout", undefined, { quiet401: true });
    } catch {
      // the session is gone either way
    }
    leave();
  });
}

let toastTimer = null;

function notice(text) {
  const toast = $("toast");
  toast.textContent = text;
  toast.hidden = !text;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    toast.hidden = true;
  }, 5_000);
}

function initLive() {
  bus.on("live-status", ({ text, state: s }) => {
    liveState = s;
    const el = $("live-status");
    el.textContent = text;
    el.dataset.state = s;
  });
  bus.on("live:hello", (frame) => {
    unreadAsOf = frame.seq ?? 0;
    setUnread(frame.unread);
    for (const summary of frame.high_priority || []) popUp(summary);
    helloSeen = true;
    if (state.me && frame.user && frame.user.id === state.me.id) setMe({ ...state.me, ...frame.user });
    showSystem(frame.system);
  });
  bus.on("live:system.message", (frame) => addSystem(frame.message));
  bus.on("live:system.withdrawn", (frame) => removeSystem(frame.id));
  bus.on("live:system.dismissed", (frame) => removeSystem(frame.id));
  bus.on("live:message.new", (frame) => {
    countFrom(frame);
    const m = frame.message;
    inbox.add(m, true);
    popUp(m);
  });
  bus.on("live:message.read", (frame) => {
    countFrom(frame);
    const id = frame.message_id;
    if (state.me && frame.reader && frame.reader.id === state.me.id) {
      inbox.markRead(id, frame.read_at);
      messageRead(id, frame.read_at);
      popupGone(id);
    }
    refreshReadCount(id);
  });
  bus.on("live:message.deleted", (frame) => {
    countFrom(frame);
    bus.emit("message-gone", { id: frame.message_id, reason: frame.reason });
  });
  bus.on("live:link.viewed", linkViewed);
  bus.on("live:link.deleted", (frame) => linkGone(frame.link_id, frame.reason));
  bus.on("link-created", () => reloadLinks());
  bus.on("live:resync", () => {
    inbox.reload();
    sent.reload();
    if (!$("nav-links").hidden) reloadLinks();
    loadUnread();
    reloadSystem();
  });
  bus.on("message-gone", ({ id, reason, byMe }) => {
    inbox.remove(id);
    sent.remove(id);
    messageGone(id, reason, byMe);
    popupGone(id);
  });
  bus.on("message-read", ({ id, read_at: readAt }) => {
    inbox.markRead(id, readAt);
    messageRead(id, readAt);
    if (liveState !== "live") get("/api/unread").then((u) => setUnread(u.count), () => {});
  });
  bus.on("sent", async (answer) => {
    try {
      sent.add(await get(`/api/messages/${answer.id}`), true);
    } catch {
      // recalled or expired already
    }
  });
  bus.on("unauthenticated", () => {
    if (state.me) leave("Your session has ended. Please sign in again.");
  });
}

function initNavigation() {
  for (const button of document.querySelectorAll(".main-nav button[data-view]")) {
    button.addEventListener("click", () => {
      if (button.dataset.view === "compose") openComposer();
      else showView(button.dataset.view);
    });
  }
  $("messages-button").addEventListener("click", () => showView("inbox"));
  bus.on("open-message", ({ id, box }) => openMessage(id, box));
  bus.on("notice", notice);
  bus.on("view", ({ name, previous }) => {
    if (name === "sent" && previous !== "message-view") sent.reload();
    if (name === "links") reloadLinks();
    if (name === "vault") loadVault();
    if (name === "admin") {
      loadOrganisationAdmin();
      loadAuditAdmin();
      loadAdmin();
      loadSystemAdmin();
    }
  });
}

async function boot() {
  initLogin();
  initLive();
  initNavigation();
  initMessage();
  initPopup();
  initCompose();
  initVault();
  initAdmin();
  initSystemAdmin();
  initOrganisationAdmin();
  initAuditAdmin();
  bus.on("me", showRights);
  bus.on("rights-changed", async () => {
    try {
      setMe(await get("/api/me", { quiet401: true }));
    } catch {
      // signed out, or offline: the next request tells
    }
  });
  initLinks({ newLink: () => openComposer({ mode: LINK }) });
  try {
    await enter(await get("/api/me", { quiet401: true }));
  } catch (error) {
    showLogin(error.status === 401 ? "" : errorText(error));
  }
}

boot();
