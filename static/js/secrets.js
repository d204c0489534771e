// Showing secrets on demand: masked until revealed, copied to the clipboard when the page may.

import { h } from "./dom.js";
import { bus } from "./bus.js";

export async function copyText(text, fallbackElement) {
  try {
    await navigator.clipboard.writeText(text);
    return "Copied to the clipboard.";
  } catch {
    // The Clipboard API needs a secure context; select the text so the person can copy it.
    if (fallbackElement) {
      if (fallbackElement instanceof HTMLInputElement) {
        if (fallbackElement.type === "password") fallbackElement.type = "text";
        fallbackElement.focus();
        fallbackElement.select();
      } else {
        const range = document.createRange();
        range.selectNodeContents(fallbackElement);
        const selection = window.getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
    }
    return "The browser refused the clipboard: the text is selected, copy it with Ctrl+C.";
  }
}

// A password (or other secret) as "••••" with Reveal and Copy buttons.
export function secretField(value, label = "password") {
  const text = h("code", { class: "secret masked" }, "••••••••");
  let shown = false;
  const reveal = h("button", { type: "button", class: "small reveal", "aria-pressed": "false" }, "Reveal");
  reveal.addEventListener("click", () => {
    shown = !shown;
    text.textContent = shown ? value : "••••••••";
    text.classList.toggle("masked", !shown);
    reveal.textContent = shown ? "Hide" : "Reveal";
    reveal.setAttribute("aria-pressed", String(shown));
    reveal.setAttribute("aria-label", `${shown ? "Hide" : "Reveal"} ${label}`);
  });
  reveal.setAttribute("aria-label", `Reveal ${label}`);
  const copy = h("button", { type: "button", class: "small copy", "aria-label": `Copy ${label}` }, "Copy");
  copy.addEventListener("click", async () => {
    if (!shown) reveal.click();
    bus.emit("notice", await copyText(value, text));
  });
  return h("span", { class: "secret-field" }, text, " ", reveal, " ", copy);
}

// The fields of a credential or entry as a definition list; secrets masked.
export function entryDetails(entry, fileHref) {
  const rows = [];
  const add = (label, value) => {
    if (value === null || value === undefined || value === "") return;
    rows.push(h("dt", {}, label), h("dd", {}, value));
  };
  add("Title", entry.title);
  add("Username", entry.username);
  if (entry.password) add("Password", secretField(entry.password));
  if (entry.url) add("URL", entry.url);
  if (entry.notes) add("Notes", h("span", { class: "pre" }, entry.notes));
  if (entry.file && fileHref) {
    add("File", h("a", { href: fileHref, download: entry.file.name || "file" }, entry.file.name || "file"));
  }
  return h("dl", { class: "details" }, rows);
}
