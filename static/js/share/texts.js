// What the page says, in one place: pure functions of what the server answered.

export const GONE_TITLE = "This link has expired, was already opened, or never existed";
export const GONE_DETAIL =
  "Nothing more can be seen through it. If you still need what it held, ask the person who sent it for a new link.";
export const BURNED_TITLE = "This link was destroyed";
export const BURNED_DETAIL =
  "The link was destroyed after too many wrong passphrases. Ask the person who sent it for a new link.";
export const OFFLINE = "The server cannot be reached. Check your connection and try again.";
export const DOWNLOAD_GONE =
  "This file can no longer be downloaded: files can be downloaded for 10 minutes after the link is opened.";

const plural = (count, one, many) => `${count} ${count === 1 ? one : many}`;

export function attemptsLeftText(attemptsLeft) {
  return `Wrong passphrase. ${plural(attemptsLeft, "attempt", "attempts")} left before the link is destroyed.`;
}

export function retryText(status, seconds) {
  const lead = status === 503 ? "The server is busy" : "Too many attempts";
  return seconds > 0 ? `${lead}, try again in ${seconds} s.` : `${lead}, try again in a moment.`;
}

// The views left after this one; the last view also says what can still be done.
export function viewsLeftText(viewsLeft, hasFiles) {
  if (viewsLeft > 0) return `${plural(viewsLeft, "more view", "more views")} left.`;
  const files = hasFiles ? "; files can be downloaded for 10 minutes." : ".";
  return `This was the last view: the link no longer opens. Copy what you need now${files}`;
}

// Seconds to wait from a Retry-After header (seconds or an HTTP date); 0 when absent.
export function retryAfterSeconds(header, now = Date.now()) {
  if (!header) return 0;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(header);
  return Number.isNaN(date) ? 0 : Math.max(0, Math.ceil((date - now) / 1000));
}

// "in 3 hours", "in 12 minutes", "in 2 days": how far off an instant is.
export function fromNow(iso, now = Date.now()) {
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return "";
  const seconds = Math.round((at - now) / 1000);
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const steps = [[86_400, "day"], [3_600, "hour"], [60, "minute"]];
  for (const [size, unit] of steps) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return format.format(seconds, "second");
}
