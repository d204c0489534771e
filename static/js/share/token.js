// The link's token: 32 random bytes in URL-safe base64 (43 characters), carried in the page's
// fragment, which the browser never sends to a server. It leaves this page only in the body of
// the requests that open the link.

const TOKEN = /^[A-Za-z0-9_-]{42}[AEIMQUYcgkosw048]$/;
// What a mail or chat program may leave stuck to a link's end; none of it is in the alphabet.
const TRAILING = /[\s.,;:!?)\]}>'"]+$/;

// The token of a fragment ("#abc…"), or null when it is missing or not a whole token.
export function tokenFromFragment(fragment) {
  const raw = (fragment || "").replace(/^#/, "").trim().replace(TRAILING, "");
  return TOKEN.test(raw) ? raw : null;
}

// Take the token out of the address bar and of this history entry, keeping the page.
export function forgetFragment() {
  if (!location.hash) return;
  history.replaceState(null, "", location.pathname + location.search);
}
