// One websocket per tab: reconnects with backoff and resumes from the last seq it saw, so every
// event reaches the views once and in order. Frames are re-emitted on the bus as "live:<type>".

import { bus } from "./bus.js";
import { get } from "./api.js";

const PING_EVERY_MS = 25_000;
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

let socket = null;
let lastSeq = null; // every event up to this seq was applied; null until the first hello
let resuming = false;
const seenWhileResuming = new Set(); // seqs past lastSeq applied during a resume
let helloSeq = null; // the latest seq of the current connection's hello
let backoff = BACKOFF_FIRST_MS;
let reconnectTimer = null;
let pingTimer = null;
let stopped = true;

function setStatus(text, state) {
  bus.emit("live-status", { text, state });
}

function url() {
  return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
}

export function start() {
  stopped = false;
  connect();
}

export function stop() {
  stopped = true;
  clearTimeout(reconnectTimer);
  clearInterval(pingTimer);
  if (socket) {
    const closing = socket;
    socket = null;
    closing.close(1000);
  }
  lastSeq = null;
  setStatus("Offline", "offline");
}

function connect() {
  clearTimeout(reconnectTimer);
  setStatus("Connecting…", "connecting");
  let ws;
  try {
    ws = new WebSocket(url());
  } catch {
    scheduleReconnect();
    return;
  }
  socket = ws;
  ws.addEventListener("message", (event) => {
    if (socket !== ws) return;
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    handle(ws, frame);
  });
  ws.addEventListener("close", (event) => {
    if (socket !== ws) return;
    socket = null;
    clearInterval(pingTimer);
    if (stopped) return;
    if (event.code === 4401) {
      checkSession();
      return;
    }
    scheduleReconnect();
  });
}

// A 4401 may be a session that ended (back to the login) or a race at startup (retry).
async function checkSession() {
  setStatus("Offline", "offline");
  try {
    await get("/api/me");
    scheduleReconnect();
  } catch (error) {
    if (error.status !== 401) scheduleReconnect();
  }
}

function scheduleReconnect() {
  if (stopped) return;
  setStatus("Offline, reconnecting…", "offline");
  const delay = backoff / 2 + Math.random() * (backoff / 2);
  backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(connect, delay);
}

function send(ws, frame) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(frame));
}

function handle(ws, frame) {
  switch (frame.type) {
    case "hello":
      backoff = BACKOFF_FIRST_MS;
      clearInterval(pingTimer);
      pingTimer = setInterval(() => send(ws, { type: "ping" }), PING_EVERY_MS);
      setStatus("Live", "live");
      helloSeq = frame.seq;
      if (lastSeq === null) {
        lastSeq = frame.seq;
        resuming = false;
      } else if (frame.seq > lastSeq) {
        // What happened while this tab was away comes first, then the hello's snapshot.
        resuming = true;
        send(ws, { type: "resume", after_seq: lastSeq });
      } else if (frame.seq < lastSeq) {
        // The server's log is not the one we followed: start over from HTTP.
        lastSeq = frame.seq;
        bus.emit("live:resync");
      }
      bus.emit("live:hello", frame);
      return;
    case "resumed":
      resuming = false;
      seenWhileResuming.clear();
      lastSeq = Math.max(lastSeq ?? 0, frame.seq ?? 0, helloSeq ?? 0);
      bus.emit("live:resumed", frame);
      return;
    case "resync":
      resuming = false;
      seenWhileResuming.clear();
      lastSeq = helloSeq;
      bus.emit("live:resync", frame);
      return;
    case "pong":
      return;
    default:
      break;
  }
  if (typeof frame.seq === "number" && !isNew(frame.seq)) return;
  bus.emit(`live:${frame.type}`, frame);
}

// Whether a frame's seq is one this tab has not had. While a resume runs, live frames may
// come before the replayed ones, and the server replays everything after the seq asked for,
// also what came live meanwhile: lastSeq only moves up to where nothing is missing, so that
// a link lost during the replay resumes from there, and the seqs past it are remembered.
function isNew(seq) {
  if (lastSeq !== null && seq <= lastSeq) return false;
  if (!resuming) {
    lastSeq = seq;
    return true;
  }
  if (seenWhileResuming.has(seq)) return false;
  seenWhileResuming.add(seq);
  while (seenWhileResuming.has(lastSeq + 1)) {
    lastSeq += 1;
    seenWhileResuming.delete(lastSeq);
  }
  return true;
}

export function isResuming() {
  return resuming;
}
