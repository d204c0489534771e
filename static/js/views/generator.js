// The password generator panel of the credentials form: several candidates to pick from.

import { h, $, clear, report } from "../dom.js";
import { get, errorText } from "../api.js";

const CANDIDATES = 5;

export function passwordQuery(options) {
  const flag = (on) => (on ? "1" : "0");
  return `/api/password?length=${options.length}&lower=${flag(options.lower)}&upper=${flag(options.upper)}`
    + `&digits=${flag(options.digits)}&symbols=${flag(options.symbols)}`
    + `&avoid_ambiguous=${flag(options.avoidAmbiguous)}`;
}

function options() {
  let length = parseInt($("gen-length").value, 10);
  if (!Number.isFinite(length)) length = 20;
  length = Math.min(128, Math.max(8, length));
  $("gen-length").value = String(length);
  return {
    length,
    lower: $("gen-lower").checked,
    upper: $("gen-upper").checked,
    digits: $("gen-digits").checked,
    symbols: $("gen-symbols").checked,
    avoidAmbiguous: $("gen-avoid-ambiguous").checked,
  };
}

let round = 0;

async function refresh() {
  const list = $("gen-candidates");
  const error = $("gen-error");
  const chosen = options();
  report(error, "");
  if (!chosen.lower && !chosen.upper && !chosen.digits && !chosen.symbols) {
    clear(list);
    report(error, "Choose at least one kind of character.");
    return;
  }
  const mine = ++round;
  let answers;
  try {
    answers = await Promise.all(Array.from({ length: CANDIDATES }, () => get(passwordQuery(chosen))));
  } catch (failure) {
    if (mine === round) report(error, errorText(failure));
    return;
  }
  if (mine !== round) return;
  clear(list);
  for (const answer of answers) {
    const button = h("button", { type: "button", class: "candidate" },
      h("code", {}, answer.password));
    button.setAttribute("aria-label", `Use ${answer.password}`);
    button.addEventListener("click", () => {
      const field = $("cred-password");
      field.value = answer.password;
      field.dispatchEvent(new Event("input", { bubbles: true }));
      for (const b of list.querySelectorAll("button")) b.classList.toggle("picked", b === button);
      field.focus();
    });
    list.appendChild(h("li", {}, button, h("span", { class: "entropy" }, `${Math.round(answer.entropy_bits)} bits`)));
  }
}

export function openGenerator(open) {
  const panel = $("generator");
  const toggle = $("cred-generate");
  const show = open ?? panel.hidden;
  panel.hidden = !show;
  toggle.setAttribute("aria-expanded", String(show));
  if (show) {
    refresh();
    $("gen-length").focus();
  }
}

export function initGenerator() {
  $("cred-generate").addEventListener("click", () => openGenerator());
  $("gen-refresh").addEventListener("click", refresh);
  for (const id of ["gen-lower", "gen-upper", "gen-digits", "gen-symbols", "gen-avoid-ambiguous"]) {
    $(id).addEventListener("change", refresh);
  }
  $("gen-length").addEventListener("change", refresh);
  // Enter in the length field would otherwise submit the credentials form.
  $("gen-length").addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault();
      refresh();
    }
  });
  $("generator").addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      openGenerator(false);
      $("cred-generate").focus();
    }
  });
}
