// What the tab knows about the person logged in, and the unread dot.

import { $ } from "./dom.js";
import { bus } from "./bus.js";

export const state = {
  me: null,
  unread: 0,
};

const MIB = 1024 * 1024;

// The largest file the account may upload, in MiB: the organisation's, at most 25.
export function largestFileMb() {
  const mb = state.me && Number.isInteger(state.me.max_file_mb) ? state.me.max_file_mb : 25;
  return Math.min(mb, 25);
}

export function largestFileBytes() {
  return largestFileMb() * MIB;
}

export function setMe(me) {
  state.me = me;
  bus.emit("me", me);
}

export function setUnread(count) {
  state.unread = Math.max(0, count | 0);
  const dot = $("unread-dot");
  dot.hidden = state.unread === 0;
  const button = $("messages-button");
  button.setAttribute("aria-label", state.unread ? `Messages, ${state.unread} unread` : "Messages");
  button.title = state.unread ? `${state.unread} unread` : "No unread messages";
  document.title = state.unread ? `(${state.unread}) realtime` : "realtime";
}
