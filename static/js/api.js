// The HTTP side of the contract: JSON in and out, the session cookie, errors as ApiError.

import { bus } from "./bus.js";

export const MAX_UPLOAD = 26_214_400;

export class ApiError extends Error {
  constructor(status, code, message, fields) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code || "error";
    this.fields = fields || {};
  }

  // "message" plus one line per field at fault.
  lines(describeField = (path) => path) {
    const lines = [this.message];
    for (const [path, what] of Object.entries(this.fields)) lines.push(`${describeField(path)}: ${what}`);
    return lines;
  }
}

function errorFrom(status, data, retryAfter) {
  const error = data && data.error ? data.error : {};
  let message = error.message;
  if (status === 429 && retryAfter) message = `${message || "Too many attempts"} (try again in ${retryAfter} s)`;
  const failure = new ApiError(status, error.code, message, error.fields);
  failure.retryAfter = Number.parseInt(retryAfter, 10) || null; // seconds, from a 429
  return failure;
}

export async function api(method, path, body, { quiet401 = false, headers = {} } = {}) {
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  if (response.status === 204) return null;
  let data = null;
  const type = response.headers.get("Content-Type") || "";
  if (type.includes("application/json")) {
    try {
      data = await response.json();
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && !quiet401) bus.emit("unauthenticated");
    throw errorFrom(response.status, data, response.headers.get("Retry-After"));
  }
  return data;
}

export const get = (path, options) => api("GET", path, undefined, options);
export const post = (path, body, options) => api("POST", path, body === undefined ? {} : body, options);
export const patch = (path, body) => api("PATCH", path, body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

// fetch cannot report upload progress; XMLHttpRequest can.
export function upload(file, onProgress) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/uploads?name=${encodeURIComponent(file.name)}`);
    xhr.withCredentials = true;
    xhr.responseType = "json";
    xhr.setRequestHeader("Accept", "application/json");
    if (file.type) xhr.setRequestHeader("Content-Type", file.type);
    else xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (event) => {
      if (onProgress) onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        if (onProgress) onProgress(file.size, file.size);
        resolve(xhr.response);
      } else {
        if (xhr.status === 401) bus.emit("unauthenticated");
        reject(errorFrom(xhr.status, xhr.response, xhr.getResponseHeader("Retry-After")));
      }
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "The upload failed: the server cannot be reached."));
    xhr.send(file);
  });
}

export function errorText(error) {
  if (error instanceof ApiError) return error.lines().join("\n");
  return String(error && error.message ? error.message : error);
}
