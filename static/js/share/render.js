// An opened link on the page: its subject, body, credentials and files, always as text.

import { h, $, clear, setText, formatTime, formatSize } from "../dom.js";
import { copyValue } from "./clipboard.js";
import { viewsLeftText, fromNow } from "./texts.js";

const MASK = "••••••••";

// Fill the content section; `download(attachment, button)` fetches a file when asked.
export function renderLink(link, { download, say }) {
  const attachments = Array.isArray(link.attachments) ? link.attachments : [];
  const credentials = attachments.filter((a) => a.kind === "credential");
  const files = attachments.filter((a) => a.kind === "file");
  setText($("content-subject"), link.subject);
  const views = $("content-views");
  setText(views, viewsLeftText(link.views_left, files.length > 0));
  views.classList.toggle("notice", link.views_left === 0);
  views.classList.toggle("last-view", link.views_left === 0);
  const expires = clear($("content-expires"));
  const relative = fromNow(link.expires_at);
  expires.append(h("time", { datetime: link.expires_at }, formatTime(link.expires_at)), relative ? ` (${relative})` : "");
  const body = $("content-body");
  setText(body, link.body);
  body.hidden = !link.body;
  fillList("content-credentials", credentials, (c) => credentialItem(c, say));
  fillList("content-files", files, (f) => fileItem(f, download));
}

export function clearLink() {
  for (const id of ["content-subject", "content-views", "content-expires", "content-body", "content-status"]) {
    clear($(id));
  }
  fillList("content-credentials", [], null);
  fillList("content-files", [], null);
}

function fillList(id, items, build) {
  const list = clear($(id));
  $(`${id}-title`).hidden = items.length === 0;
  for (const item of items) list.appendChild(build(item));
}

function credentialItem(credential, say) {
  const name = credential.title || credential.name || "Credentials";
  const rows = [];
  const add = (label, value) => rows.push(h("dt", {}, label), h("dd", {}, value));
  if (credential.username) add("Username", copyable(credential.username, "username", name, say));
  if (credential.password) add("Password", passwordField(credential.password, name, say));
  if (credential.url) add("URL", urlValue(credential.url));
  if (credential.notes) add("Notes", h("span", { class: "pre notes-value" }, credential.notes));
  return h("li", { class: "share-item share-credential", dataset: { id: credential.id } },
    h("h3", { class: "share-item-title" }, name),
    rows.length ? h("dl", { class: "details" }, rows) : h("p", { class: "hint" }, "Nothing is filled in."));
}

function copyable(value, what, name, say) {
  const text = h("span", { class: `secret ${what}-value` }, value);
  return h("span", { class: "share-value" }, text, " ",
    copyButton(value, what, name, say, () => text));
}

function passwordField(value, name, say) {
  const text = h("code", { class: "secret password-value masked" }, MASK);
  const toggle = h("button", {
    type: "button", class: "small show-password", "aria-pressed": "false", "aria-label": `Show the password of ${name}`,
  }, "Show");
  const setShown = (shown) => {
    text.textContent = shown ? value : MASK;
    text.classList.toggle("masked", !shown);
    toggle.textContent = shown ? "Hide" : "Show";
    toggle.setAttribute("aria-pressed", String(shown));
    toggle.setAttribute("aria-label", `${shown ? "Hide" : "Show"} the password of ${name}`);
  };
  toggle.addEventListener("click", () => setShown(text.classList.contains("masked")));
  const reveal = () => {
    setShown(true);
    return text;
  };
  return h("span", { class: "share-value" }, text, " ", toggle, " ", copyButton(value, "password", name, say, reveal));
}

function copyButton(value, what, name, say, selectable) {
  const label = `Copy the ${what} of ${name}`;
  const button = h("button", { type: "button", class: `small copy-${what}`, "aria-label": label }, "Copy");
  let restore = null;
  button.addEventListener("click", async () => {
    const copied = await copyValue(value, selectable);
    say(copied
      ? `The ${what} was copied.`
      : `The browser refused to copy: the ${what} is selected, copy it with Ctrl+C (⌘C on a Mac).`);
    if (!copied) return;
    button.textContent = "Copied";
    clearTimeout(restore);
    restore = setTimeout(() => { button.textContent = "Copy"; }, 2_000);
  });
  return button;
}

// A web address is a link only when it is one (http or https); anything else stays text.
function urlValue(url) {
  let parsed = null;
  try {
    parsed = new URL(url);
  } catch {
    parsed = null;
  }
  if (parsed && (parsed.protocol === "https:" || parsed.protocol === "http:")) {
    return h("a", { href: parsed.href, class: "url-value", rel: "noopener noreferrer", target: "_blank" }, url);
  }
  return h("span", { class: "url-value" }, url);
}

function fileItem(file, download) {
  const name = file.name || "file";
  const button = h("button", { type: "button", class: "small download", "aria-label": `Download ${name}` }, "Download");
  button.addEventListener("click", () => download(file, button));
  const size = typeof file.size === "number" ? h("span", { class: "size" }, formatSize(file.size)) : null;
  return h("li", { class: "share-item share-file", dataset: { id: file.id } },
    h("span", { class: "file-name" }, name), " ", size, " ", button);
}
