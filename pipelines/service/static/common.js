/* german-rag search page: what every page shares.
 * The API key lives in sessionStorage only (gone when the tab closes) and goes out as
 * "Authorization: Bearer KEY"; never in a URL. Text from the server is put into the page with
 * textContent / text nodes only: nothing from a document or a user is ever parsed as HTML. */
"use strict";

const GR = (() => {
  const KEY = "german-rag-key";
  const STATUS_TEXT = {
    400: "Ungültige Anfrage", 401: "API-Schlüssel fehlt oder ist ungültig", 403: "Dieser Schlüssel darf das nicht",
    404: "Nicht gefunden", 408: "Zeitüberschreitung", 413: "Zu groß", 415: "Dateityp nicht unterstützt",
    422: "Ungültige Eingabe", 429: "Der Dienst ist ausgelastet, bitte gleich erneut versuchen",
    503: "Der Dienst ist noch nicht bereit",
  };
  const dateFmt = new Intl.DateTimeFormat("de-DE", { day: "2-digit", month: "2-digit", year: "numeric" });
  const timeFmt = new Intl.DateTimeFormat("de-DE", {
    day: "2-digit", month: "2-digit", year: "numeric", hour: "2-digit", minute: "2-digit",
  });
  const numFmt = new Intl.NumberFormat("de-DE", { maximumFractionDigits: 3 });
  let who = null;

  function key() {
    return sessionStorage.getItem(KEY) || "";
  }

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (key()) h.Authorization = "Bearer " + key();
    return h;
  }

  class ApiError extends Error {
    constructor(status, detail) {
      super((STATUS_TEXT[status] || "Fehler " + status) + (detail ? " (" + detail + ")" : ""));
      this.status = status;
      this.detail = detail;
    }
  }

  async function errorOf(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = (body.error && body.error.message) || "";
    } catch (e) { /* not JSON: the status says enough */ }
    return new ApiError(response.status, detail);
  }

  /** fetch a /v1 endpoint with the key; JSON in, JSON out; throws ApiError with a German message. */
  async function api(method, path, body) {
    const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "Der Dienst ist nicht erreichbar");
    }
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  /** An element with attributes and children; strings become text nodes (never HTML). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "hidden") node.hidden = true;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return node;
  }

  /** Append `text` to `parent`, the [start, end) spans wrapped in <mark class=cls>: DOM nodes only. */
  function appendMarked(parent, text, spans, cls) {
    let at = 0;
    for (const [start, end] of spans || []) {
      if (start < at || end <= start || end > text.length) continue;
      if (start > at) parent.append(document.createTextNode(text.slice(at, start)));
      parent.append(el("mark", { class: cls || "term" }, text.slice(start, end)));
      at = end;
    }
    if (at < text.length) parent.append(document.createTextNode(text.slice(at)));
    return parent;
  }

  function say(text, kind) {
    const box = document.getElementById("message");
    if (!box) return;
    box.textContent = text || "";
    box.className = "message" + (kind ? " " + kind : "");
  }

  function fail(error) {
    say(error && error.message ? error.message : String(error), "error");
  }

  function date(value) {
    if (!value) return "";
    const d = new Date(value);
    if (isNaN(d.getTime())) return String(value);
    return /T\d/.test(String(value)) ? timeFmt.format(d) + " Uhr" : dateFmt.format(d);
  }

  function number(value) {
    return typeof value === "number" ? numFmt.format(value) : String(value);
  }

  function plural(n, one, many) {
    return number(n) + " " + (n === 1 ? one : many);
  }

  /** What the key may do (GET /v1/whoami), asked once per page and again when the key changes. */
  async function whoami(fresh) {
    if (!who || fresh) who = api("GET", "/v1/whoami");
    return who;
  }

  function showKeyState(info, error) {
    const state = document.getElementById("key-state");
    if (!state) return;
    if (error) {
      state.textContent = error.status === 401 ? "Bitte einen gültigen API-Schlüssel eingeben." : error.message;
      state.className = "key-state error";
      return;
    }
    const role = info.may_write ? "lesen und schreiben" : "nur lesen";
    state.textContent = (info.keys_required ? "Schlüssel gilt: " : "Keine Schlüssel nötig: ") + role +
      (info.tenant ? " (Mandant " + info.tenant + ")" : "");
    state.className = "key-state ok";
  }

  /** Show or hide every .write-only element for this key; the server refuses writes of a read key anyway. */
  function applyRights(info) {
    for (const node of document.querySelectorAll(".write-only")) node.hidden = !(info && info.may_write);
    const ro = document.getElementById("read-only");
    if (ro) ro.hidden = !info || info.may_write;
  }

  /** Ask whoami, show the result, call `onReady(info)`; on 401 ask for a key. */
  async function start(onReady) {
    try {
      const info = await whoami(true);
      showKeyState(info);
      applyRights(info);
      if (onReady) await onReady(info);
    } catch (error) {
      showKeyState(null, error);
      applyRights(null);
      if (error.status !== 401) fail(error);
    }
  }

  function setupKeyForm(onChange) {
    const form = document.getElementById("key-form");
    const input = document.getElementById("api-key");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const value = input.value.trim();
      if (value) sessionStorage.setItem(KEY, value);
      input.value = "";
      say("");
      start(onChange);
    });
    document.getElementById("key-clear").addEventListener("click", () => {
      sessionStorage.removeItem(KEY);
      input.value = "";
      start(onChange);
    });
  }

  /** A page's entry point: the key form, then `onReady(info)` once the key's rights are known. */
  function page(onReady) {
    document.addEventListener("DOMContentLoaded", () => {
      setupKeyForm(onReady);
      start(onReady);
    });
  }

  function params() {
    return new URLSearchParams(window.location.search);
  }

  function docLink(p, query) {
    const q = new URLSearchParams({ doc_id: p.doc_id, chunk_id: p.chunk_id, start: p.start, end: p.end });
    if (query) q.set("q", query);
    return "dokument?" + q.toString();
  }

  return { api, el, appendMarked, say, fail, date, number, plural, whoami, page, params, headers, docLink, errorOf,
    ApiError };
})();
