// Element building without innerHTML: server data only ever reaches the page as text or attributes.

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = v;
    } else if (key === "checked" || key === "value" || key === "disabled" || key === "selected") {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export const $ = (id) => document.getElementById(id);

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function show(el, visible = true) {
  el.hidden = !visible;
}

export function setText(el, text) {
  el.textContent = text === null || text === undefined ? "" : String(text);
  return el;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : date.toLocaleString();
}

// A date as a datetime-local input takes it, in the browser's time zone.
export function localInputValue(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`
    + `T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

// A span of seconds in the largest whole unit: "2 hours", "30 days", "90 seconds".
export function formatSeconds(seconds) {
  const units = [[86400, "day"], [3600, "hour"], [60, "minute"], [1, "second"]];
  const [size, name] = units.find(([u]) => seconds % u === 0);
  const count = seconds / size;
  return `${count} ${name}${count === 1 ? "" : "s"}`;
}

export function formatSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

// Shows a message in a status or error element; an empty text hides an error element.
export function report(el, text, isError = false) {
  setText(el, text);
  el.classList.toggle("is-error", Boolean(text) && isError);
  if (el.classList.contains("error")) el.hidden = !text;
}

// Escape closes a <dialog> natively; this also wires its Cancel buttons.
export function wireDialog(dialog) {
  for (const button of dialog.querySelectorAll(".dialog-cancel")) {
    button.addEventListener("click", () => dialog.close());
  }
}

export function openDialog(dialog) {
  if (!dialog.open) dialog.showModal();
}

// A path of folder names for select options: "Work / Servers".
export function folderPaths(folders) {
  const byId = new Map(folders.map((f) => [f.id, f]));
  const path = (folder, seen = new Set()) => {
    if (!folder.parent_id || !byId.has(folder.parent_id) || seen.has(folder.id)) return folder.name;
    seen.add(folder.id);
    return `${path(byId.get(folder.parent_id), seen)} / ${folder.name}`;
  };
  return folders
    .map((f) => ({ id: f.id, label: path(f) }))
    .sort((a, b) => a.label.localeCompare(b.label));
}

export function randomKey() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A destructive button asks again on its first press instead of a blocking confirm().
export function confirmTwice(button, action, label) {
  let armed = null;
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    if (!armed) {
      button.dataset.label = button.textContent;
      button.textContent = label || "Click again to delete";
      button.classList.add("armed");
      armed = setTimeout(() => {
        armed = null;
        button.textContent = button.dataset.label;
        button.classList.remove("armed");
      }, 4_000);
      return;
    }
    clearTimeout(armed);
    armed = null;
    button.textContent = button.dataset.label;
    button.classList.remove("armed");
    await action();
  });
}
