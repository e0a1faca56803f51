/* Sources: GET /v1/sources, paged and searchable; delete (DELETE /v1/documents?source=...) after a
 * confirmation, offered only to a write key (the server refuses a read key's delete anyway). */
"use strict";

(() => {
  const { api, el, say, fail, number } = GR;
  let offset = 0;
  let total = 0;
  let mayWrite = false;
  let latest = 0; // only the newest request may fill the table (an older answer can arrive later)

  function limit() {
    return Number(document.getElementById("page-size").value) || 20;
  }

  function metaText(fields) {
    const parts = [];
    for (const [k, v] of Object.entries(fields.meta || {})) parts.push(k + ": " + v);
    if (fields.file_type) parts.push("Typ: " + fields.file_type);
    if (fields.date) parts.push("Datum: " + GR.date(fields.date));
    if (fields.language) parts.push("Sprache: " + fields.language);
    return parts.join(" · ");
  }

  function row(s) {
    const cells = [
      el("td", { class: "source" }, s.source),
      el("td", {}, s.title || ""),
      el("td", { class: "num" }, number(s.chunks)),
      el("td", {}, GR.date(s.ingested_at)),
      el("td", {}, metaText(s.fields || {})),
    ];
    if (mayWrite) {
      const button = el("button", { type: "button", class: "danger", "aria-label": "Quelle " + s.source + " löschen" },
        "Löschen");
      button.addEventListener("click", () => confirmDelete(s.source, button));
      cells.push(el("td", { class: "write-only" }, button));
    }
    return el("tr", {}, ...cells);
  }

  async function load() {
    const mine = ++latest;
    const q = new URLSearchParams({ contains: document.getElementById("contains").value.trim(), offset,
      limit: limit() });
    try {
      const page = await api("GET", "/v1/sources?" + q.toString());
      if (mine !== latest) return;
      total = page.total;
      document.getElementById("sources-body").replaceChildren(...page.sources.map(row));
      const last = Math.min(offset + page.sources.length, total);
      document.getElementById("sources-summary").textContent = total
        ? number(total) + (total === 1 ? " Quelle" : " Quellen") : "Keine Quellen gefunden.";
      document.getElementById("page-state").textContent = total
        ? "Einträge " + number(offset + 1) + " bis " + number(last) + " von " + number(total) : "";
      document.getElementById("prev-page").disabled = offset === 0;
      document.getElementById("next-page").disabled = offset + limit() >= total;
    } catch (error) {
      if (mine === latest) fail(error);
    }
  }

  function confirmDelete(source, opener) {
    const box = document.getElementById("confirm");
    document.getElementById("confirm-text").textContent =
      "Quelle „" + source + "“ mit allen Abschnitten löschen? Das kann nicht rückgängig gemacht werden.";
    box.hidden = false;
    const yes = document.getElementById("confirm-yes");
    const no = document.getElementById("confirm-no");
    const close = () => {
      box.hidden = true;
      yes.onclick = no.onclick = box.onkeydown = null;
      if (opener.isConnected) opener.focus();
    };
    yes.onclick = async () => {
      close();
      try {
        const done = await api("DELETE", "/v1/documents?" + new URLSearchParams({ source }).toString());
        say("Gelöscht: " + source + " (" + number(done.points_deleted) + " Abschnitte)", "ok");
        await load();
      } catch (error) {
        fail(error);
      }
    };
    no.onclick = close;
    box.onkeydown = (event) => { if (event.key === "Escape") close(); };
    no.focus();
  }

  GR.page(async (info) => {
    mayWrite = info.may_write;
    const form = document.getElementById("sources-form");
    if (!form.dataset.bound) {
      form.dataset.bound = "1";
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        offset = 0;
        load();
      });
      document.getElementById("prev-page").addEventListener("click", () => {
        offset = Math.max(0, offset - limit());
        load();
      });
      document.getElementById("next-page").addEventListener("click", () => {
        if (offset + limit() < total) offset += limit();
        load();
      });
    }
    await load();
  });
})();
