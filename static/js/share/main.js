// The page that opens a shareable link for someone without an account. Nothing is asked of the
// server until the person presses Reveal, so link previews and scanners burn no view. The token
// and passphrase are kept in this module only, for the file downloads after the reveal.

import { $, report } from "../dom.js";
import { tokenFromFragment, forgetFragment } from "./token.js";
import { openLink, fetchFile } from "./open.js";
import { renderLink, clearLink } from "./render.js";
import {
  GONE_TITLE, GONE_DETAIL, BURNED_TITLE, BURNED_DETAIL, OFFLINE, DOWNLOAD_GONE,
  attemptsLeftText, retryText,
} from "./texts.js";

const SECTIONS = ["share-incomplete", "share-intro", "share-ended", "share-content", "share-cleared"];

let secret = null; // {token, passphrase}: in memory only, never stored
let passphraseAsked = false;
let busy = false;
let waitTimer = null;
let waitingUntil = 0; // Reveal stays off until then (ms since the epoch), as the server asked
const objectUrls = new Set();

function showSection(id, focus) {
  for (const section of SECTIONS) $(section).hidden = section !== id;
  const target = focus || $(id).querySelector("h1");
  if (target) target.focus();
}

function revealError(text) {
  report($("reveal-error"), text, true);
}

function askPassphrase() {
  passphraseAsked = true;
  $("passphrase-field").hidden = false;
  const input = $("passphrase");
  input.value = "";
  input.focus();
}

function end(title, detail) {
  secret = null;
  $("ended-title").textContent = title;
  $("ended-detail").textContent = detail;
  showSection("share-ended");
}

// A button that stays focusable while it may not be pressed (a disabled one would drop focus).
function holdButton(button, held) {
  if (held) button.setAttribute("aria-disabled", "true");
  else button.removeAttribute("aria-disabled");
}

// Keep Reveal off for the time the server asked, counting down on screen.
function waitThenRetry(status, seconds) {
  let left = seconds;
  clearInterval(waitTimer);
  revealError(retryText(status, left));
  if (left <= 0) return;
  waitingUntil = Date.now() + left * 1_000;
  holdButton($("reveal"), true);
  waitTimer = setInterval(() => {
    left -= 1;
    if (left > 0) {
      revealError(retryText(status, left));
      return;
    }
    clearInterval(waitTimer);
    waitingUntil = 0;
    holdButton($("reveal"), false);
    revealError("");
    report($("reveal-status"), "You can try again now.");
  }, 1_000);
}

async function reveal(event) {
  event.preventDefault();
  if (busy || !secret || Date.now() < waitingUntil) return;
  const passphrase = passphraseAsked ? $("passphrase").value : null;
  if (passphraseAsked && !passphrase) {
    revealError("Enter the passphrase first.");
    $("passphrase").focus();
    return;
  }
  busy = true;
  holdButton($("reveal"), true);
  revealError("");
  report($("reveal-status"), "Opening…");
  const outcome = await openLink(secret.token, passphrase);
  busy = false;
  holdButton($("reveal"), false);
  report($("reveal-status"), "");
  answer(outcome, passphrase);
}

function answer(outcome, passphrase) {
  switch (outcome.kind) {
    case "opened":
      return showLink(outcome.link, passphrase);
    case "passphrase_required":
      return askPassphrase();
    case "passphrase_wrong":
      if (outcome.attemptsLeft === 0) {
        forgetFragment();
        return end(BURNED_TITLE, BURNED_DETAIL);
      }
      askPassphrase();
      return revealError(attemptsLeftText(outcome.attemptsLeft));
    case "gone":
      return end(GONE_TITLE, GONE_DETAIL);
    case "wait":
      return waitThenRetry(outcome.status, outcome.seconds);
    case "offline":
      return revealError(OFFLINE);
    default:
      return revealError(outcome.message);
  }
}

function showLink(link, passphrase) {
  secret.passphrase = passphrase;
  $("passphrase").value = "";
  forgetFragment();
  renderLink(link, { download, say: (text) => report($("content-status"), text) });
  window.addEventListener("beforeunload", holdOnLeaving);
  showSection("share-content", $("content-subject"));
}

// Leaving or reloading loses the content, which may not open again: the browser asks first.
function holdOnLeaving(event) {
  event.preventDefault();
  event.returnValue = "";
}

async function download(file, button) {
  if (!secret || button.getAttribute("aria-disabled") === "true") return;
  const say = (text, isError = false) => report($("content-status"), text, isError);
  holdButton(button, true);
  say(`Downloading ${file.name}…`);
  const outcome = await fetchFile(file.id, secret.token, secret.passphrase);
  holdButton(button, false);
  if (outcome.kind === "file") {
    save(outcome.blob, file.name || "file");
    say(`Downloaded ${file.name}.`);
  } else if (outcome.kind === "gone") {
    say(DOWNLOAD_GONE, true);
  } else if (outcome.kind === "wait") {
    say(retryText(outcome.status, outcome.seconds), true);
  } else if (outcome.kind === "offline") {
    say(OFFLINE, true);
  } else {
    say(outcome.message || "The file could not be downloaded.", true);
  }
}

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  objectUrls.add(url);
  const anchor = document.createElement("a");
  anchor.href = url;
  anchor.download = name;
  anchor.hidden = true;
  document.body.appendChild(anchor);
  anchor.click();
  anchor.remove();
  // The browser has taken the file by then; the page keeps no copy longer than it must.
  setTimeout(() => {
    URL.revokeObjectURL(url);
    objectUrls.delete(url);
  }, 60_000);
}

function clearPage() {
  secret = null;
  clearLink();
  for (const url of objectUrls) URL.revokeObjectURL(url);
  objectUrls.clear();
  window.removeEventListener("beforeunload", holdOnLeaving);
  showSection("share-cleared");
}

function togglePassphraseShown() {
  const input = $("passphrase");
  const shown = input.type === "password";
  input.type = shown ? "text" : "password";
  $("passphrase-show").textContent = shown ? "Hide" : "Show";
  $("passphrase-show").setAttribute("aria-pressed", String(shown));
}

function start() {
  const token = tokenFromFragment(location.hash);
  if (!token) {
    $("share-incomplete").hidden = false;
    return;
  }
  secret = { token, passphrase: null };
  $("reveal-form").addEventListener("submit", reveal);
  $("passphrase-show").addEventListener("click", togglePassphraseShown);
  $("content-clear").addEventListener("click", clearPage);
  $("share-intro").hidden = false;
}

// Another link pasted into this tab changes only the fragment: start over with it.
window.addEventListener("hashchange", () => {
  if (location.hash) location.reload();
});

start();
