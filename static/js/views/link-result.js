// What the composer shows once a link is created: its URL, this once only, with a Copy button.

import { $, report, formatTime } from "../dom.js";
import { copyText } from "../secrets.js";

const panel = $("link-result");

export function linkResultShown() {
  return !panel.hidden;
}

// Shows the created link in place of the composer's fields; `emailedTo` lists where it went,
// `locked` says whether it asks for a passphrase.
export function showLinkResult(answer, { emailedTo = [], locked = false } = {}) {
  $("link-result-title").textContent = emailedTo.length ? "Link sent" : "Link created";
  const sent = $("link-result-sent");
  sent.textContent = emailedTo.length ? `Sent to ${emailedTo.join(", ")}` : "";
  sent.hidden = emailedTo.length === 0;
  $("link-url").value = answer.url;
  $("link-result-expires").textContent = formatTime(answer.expires_at);
  const views = answer.max_views;
  $("link-result-views").textContent = views === 1 ? "Once" : `${views} times`;
  $("link-result-locked").hidden = !locked;
  report($("link-result-status"), "");
  $("compose-fields").hidden = true;
  panel.hidden = false;
  $("link-url").focus();
  $("link-url").select();
}

// Forgets the URL (it cannot be had again) and brings the composer's fields back.
export function hideLinkResult() {
  $("link-url").value = "";
  panel.hidden = true;
  $("compose-fields").hidden = false;
}

export function initLinkResult({ done, showLinks }) {
  $("link-copy").addEventListener("click", async () => {
    report($("link-result-status"), await copyText($("link-url").value, $("link-url")));
  });
  $("link-done").addEventListener("click", () => {
    hideLinkResult();
    done();
  });
  $("link-show-links").addEventListener("click", () => {
    hideLinkResult();
    showLinks();
  });
}
