// The composer's credentials form: title, username, a password (typed or generated), attached.

import { $ } from "../dom.js";
import { attach } from "./compose-attachments.js";
import { openGenerator } from "./generator.js";

export function hideCredentialForm() {
  const form = $("credential-form");
  form.reset();
  form.hidden = true;
  openGenerator(false);
  $("cred-password").type = "password";
  $("cred-show").textContent = "Show";
}

export function openCredentialForm() {
  $("credential-form").hidden = false;
  $("cred-title").focus();
}

// `showError` reports a problem in the composer (an empty list clears it).
export function initCredentials(showError) {
  const form = $("credential-form");
  $("cred-show").addEventListener("click", () => {
    const field = $("cred-password");
    const reveal = field.type === "password";
    field.type = reveal ? "text" : "password";
    $("cred-show").textContent = reveal ? "Hide" : "Show";
    $("cred-show").setAttribute("aria-pressed", String(reveal));
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const title = $("cred-title").value.trim();
    if (!title) {
      showError("Credentials need a title.");
      $("cred-title").focus();
      return;
    }
    attach({
      kind: "credential", label: title, title,
      username: $("cred-username").value, password: $("cred-password").value,
    });
    showError([]);
    hideCredentialForm();
    $("more").focus();
  });
  $("cred-cancel").addEventListener("click", () => {
    hideCredentialForm();
    $("more").focus();
  });
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      hideCredentialForm();
      $("more").focus();
    }
  });
}
