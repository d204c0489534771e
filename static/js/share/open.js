// The two requests of the page, both without a session: opening the link (counts a view) and
// fetching one of its files (counts none). The token travels only in their bodies.

import { retryAfterSeconds } from "./texts.js";

async function postJson(path, body) {
  return fetch(path, {
    method: "POST",
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
}

async function errorOf(response) {
  try {
    const data = await response.json();
    return data && data.error ? data.error : {};
  } catch {
    return {};
  }
}

// What a refused request means to the page: {kind, ...}.
async function refusal(response) {
  const error = await errorOf(response);
  if (response.status === 404) return { kind: "gone" };
  if (response.status === 429 || response.status === 503) {
    const seconds = retryAfterSeconds(response.headers.get("Retry-After"));
    return { kind: "wait", status: response.status, seconds };
  }
  if (response.status === 401 && error.code === "passphrase_required") return { kind: "passphrase_required" };
  if (response.status === 401 && error.code === "passphrase_wrong") {
    const left = Number.isInteger(error.attempts_left) ? error.attempts_left : 0;
    return { kind: "passphrase_wrong", attemptsLeft: Math.max(0, left) };
  }
  const message = typeof error.message === "string" && error.message ? error.message : `error ${response.status}`;
  return { kind: "failed", message: `The link could not be opened (${message}).` };
}

// Open the link: {kind: "opened", link} or a refusal; {kind: "offline"} when unreachable.
export async function openLink(token, passphrase) {
  let response;
  try {
    response = await postJson("/api/links/open", { token, passphrase });
  } catch {
    return { kind: "offline" };
  }
  if (!response.ok) return refusal(response);
  try {
    return { kind: "opened", link: await response.json() };
  } catch {
    return { kind: "failed", message: "The server's answer could not be read. Try again." };
  }
}

// One file of an opened link: {kind: "file", blob} or a refusal.
export async function fetchFile(attachmentId, token, passphrase) {
  let response;
  try {
    response = await postJson(`/api/links/open/attachments/${encodeURIComponent(attachmentId)}`, { token, passphrase });
  } catch {
    return { kind: "offline" };
  }
  if (!response.ok) return refusal(response);
  try {
    return { kind: "file", blob: await response.blob() };
  } catch {
    return { kind: "offline" };
  }
}
