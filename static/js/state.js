// What the tab knows about the person logged in, and the unread dot.

import { $ } from "./dom.js";
import { bus } from "./bus.js";

export const state = {
  me: null,
  unread: 0,
};

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
