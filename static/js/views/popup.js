// The high-priority popup: one modal at a time, for each unread high-priority message.

import { $, setText, formatTime, report } from "../dom.js";
import { get, post, errorText } from "../api.js";
import { bus } from "../bus.js";

const dialog = $("popup");
const queue = [];
const seen = new Set(); // ids popped up in this tab: a dismissed one does not come back on reconnect
let current = null;
let opening = false;

export function popUp(summary) {
  if (!summary || !summary.high_priority || summary.read_at) return;
  if (seen.has(summary.id)) return;
  seen.add(summary.id);
  queue.push(summary);
  showNext();
}

async function showNext() {
  if (current || opening || queue.length === 0) return;
  opening = true;
  const summary = queue.shift();
  let detail = summary;
  try {
    detail = await get(`/api/messages/${summary.id}`);
  } catch (error) {
    if (error.status === 404) {
      opening = false;
      showNext();
      return;
    }
  }
  opening = false;
  if (detail.read_at) {
    showNext();
    return;
  }
  current = detail;
  setText($("popup-subject"), detail.subject);
  setText($("popup-sender"), detail.sender.display_name);
  setText($("popup-sent"), formatTime(detail.sent_at));
  setText($("popup-body"), detail.body ?? "");
  const names = (detail.attachments || []).map((a) => a.name).join(", ");
  $("popup-attachments").hidden = !names;
  setText($("popup-attachments"), names ? `Attachments: ${names}` : "");
  if (!dialog.open) dialog.showModal();
  $("popup-close").focus();
}

async function markRead(message) {
  try {
    const answer = await post(`/api/messages/${message.id}/read`);
    bus.emit("message-read", { id: message.id, read_at: answer.read_at });
  } catch (error) {
    if (error.status !== 404) bus.emit("notice", errorText(error));
  }
}

function finish() {
  current = null;
  if (dialog.open) dialog.close();
  showNext();
}

export function popupGone(id) {
  const index = queue.findIndex((m) => m.id === id);
  if (index >= 0) queue.splice(index, 1);
  if (current && current.id === id) finish();
}

export function initPopup() {
  $("popup-close").addEventListener("click", async () => {
    const message = current;
    if (!message) return finish();
    finish();
    await markRead(message);
  });
  $("popup-reply").addEventListener("click", async () => {
    const message = current;
    if (!message) return finish();
    current = null;
    dialog.close();
    bus.emit("reply", message);
    markRead(message);
    setTimeout(showNext, 0);
  });
  // Escape dismisses without marking read; the next one follows.
  dialog.addEventListener("close", () => {
    if (current) {
      current = null;
      setTimeout(showNext, 0);
    }
  });
}

export function resetPopups() {
  queue.length = 0;
  seen.clear();
  current = null;
  if (dialog.open) dialog.close();
  report($("popup-attachments"), "");
}
