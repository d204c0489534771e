// Creating a link from the composer (POST /api/links), and what a refusal means to the person.

import { $, report } from "../dom.js";
import { post, errorText, ApiError } from "../api.js";
import { bus } from "../bus.js";
import { EMAIL } from "./compose-mode.js";
import { attached, attachmentsPayload, forgetUploads, hasVaultAttachments, uploadFiles } from "./compose-attachments.js";
import { readLinkOptions, showFieldErrors, focusFirstError } from "./link-options.js";
import { showLinkResult } from "./link-result.js";

function waitText(seconds) {
  if (!seconds) return "later";
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

// The lines that say why the server refused the link; field errors go beside their fields.
function refusal(error, describeField) {
  if (!(error instanceof ApiError)) return [errorText(error)];
  if (Object.keys(error.fields).length) {
    const elsewhere = showFieldErrors(error.fields);
    const summary = error.status === 400 ? "Some fields need attention." : error.message;
    return [summary, ...elsewhere.map(([path, what]) => `${describeField(path)}: ${what}`)];
  }
  if (error.status === 403) {
    return [attached().length
      ? "Your account may not share links with attachments. Remove them, or ask an administrator."
      : "Your account may not create shareable links. Ask an administrator."];
  }
  if (error.status === 409 && error.code === "email_unavailable") {
    return ["Email is not available on this server: nothing was sent. Create a shareable link and pass it on yourself."];
  }
  if (error.status === 429) {
    return [`You have created too many links for now. Try again ${waitText(error.retryAfter)}.`];
  }
  if (error.status === 503) {
    return ["The mail server did not answer: nothing was sent. Try again in a moment."];
  }
  if (error.status === 404) {
    forgetUploads();
    return ["An uploaded file has expired: create the link again to upload it anew."];
  }
  return error.lines(describeField);
}

// Checks the draft before anything is uploaded; answers whether it may go.
function checked(problems, showError) {
  if (!$("subject").value.trim()) problems.subject = "Write a subject.";
  const lines = [];
  if (Object.keys(problems).length) lines.push("Some fields need attention.");
  if (hasVaultAttachments()) {
    lines.push("Vault entries and folders go in-app only: remove them from the attachments, or send in-app.");
  }
  if (lines.length === 0) return true;
  showFieldErrors(problems);
  showError(lines);
  if (!focusFirstError()) $("compose-attachments").querySelector("button.remove")?.focus();
  return false;
}

// Creates the link of the draft in `mode` and shows it in place of the emptied draft, or says
// why not.
export async function createLink(mode, { showError, statusBox, progress, describeField, resetDraft }) {
  const { values, problems } = readLinkOptions(mode);
  if (!checked(problems, showError)) return;
  try {
    await uploadFiles(progress, statusBox);
    report(statusBox, mode === EMAIL ? "Sending…" : "Creating the link…");
    const answer = await post("/api/links", {
      subject: $("subject").value,
      body: $("body").value,
      attachments: attachmentsPayload(),
      ...values,
    });
    resetDraft();
    report(statusBox, "");
    showLinkResult(answer, { emailedTo: values.email ? values.email.to : [], locked: Boolean(values.passphrase) });
    bus.emit("link-created", answer);
  } catch (error) {
    report(statusBox, "");
    showError(refusal(error, describeField));
    focusFirstError();
    if (error.status === 403) bus.emit("rights-changed"); // the rights may have changed meanwhile
  }
}
