/* Document view: the stored text around the chosen chunk (GET /v1/documents/{doc_id}/text), the passage marked
 * at its exact character span and scrolled into view; the query's terms marked inside it. */
"use strict";

(() => {
  const { api, el, appendMarked, fail, number } = GR;

  function field(list, name, value) {
    if (value === null || value === undefined || value === "") return;
    list.append(el("dt", {}, name), el("dd", {}, String(value)));
  }

  function showFields(doc) {
    const list = document.getElementById("doc-fields");
    const d = doc.document || {};
    list.replaceChildren();
    field(list, "Titel", d.title);
    field(list, "Quelle", doc.source);
    field(list, "Autor", d.author);
    field(list, "Datum", d.date ? GR.date(d.date) : null);
    field(list, "Geändert", d.modified ? GR.date(d.modified) : null);
    field(list, "Seiten", d.pages);
    field(list, "Sprache", d.language);
    for (const [k, v] of Object.entries(d.meta || {})) field(list, k, v);
    const range = document.getElementById("doc-range");
    range.textContent = "Abschnitte " + number(doc.first_index + 1) + " bis " + number(doc.last_index + 1) +
      (doc.chunk_count ? " von " + number(doc.chunk_count) : "") + " · Zeichen " + number(doc.start) + " bis " +
      number(doc.end);
  }

  /** The text with [start, end) (document offsets) wrapped in <mark id=passage>; query terms marked inside. */
  function render(doc, start, end, termSpans) {
    const box = document.getElementById("doc-text");
    const a = Math.max(0, start - doc.start);
    const b = Math.min(doc.text.length, end - doc.start);
    const passage = appendMarked(el("mark", { id: "passage", class: "passage", tabindex: "-1",
      "aria-label": "Gefundene Stelle" }), doc.text.slice(a, b), termSpans, "term");
    box.replaceChildren(document.createTextNode(doc.text.slice(0, a)), passage,
      document.createTextNode(doc.text.slice(b)));
    passage.scrollIntoView({ block: "center" });
    passage.focus({ preventScroll: true });
  }

  GR.page(async () => {
    const q = GR.params();
    const docId = q.get("doc_id");
    if (!docId) {
      fail("Kein Dokument gewählt: bitte über die Suche öffnen.");
      return;
    }
    const query = q.get("q") || "";
    if (query) document.getElementById("back-link").href = "./?" + new URLSearchParams({ q: query }).toString();
    try {
      const path = "/v1/documents/" + encodeURIComponent(docId) + "/text?" +
        new URLSearchParams(q.get("chunk_id") ? { chunk_id: q.get("chunk_id") } : { chunk_index: q.get("chunk") || "0" });
      const doc = await api("GET", path);
      showFields(doc);
      const start = q.has("start") ? Number(q.get("start")) : doc.start;
      const end = q.has("end") ? Number(q.get("end")) : doc.start;
      const piece = doc.text.slice(Math.max(0, start - doc.start), Math.max(0, end - doc.start));
      const spans = query && piece ? (await api("POST", "/v1/highlight", { query, texts: [piece] })).spans[0] : [];
      render(doc, start, end, spans);
    } catch (error) {
      fail(error);
    }
  });
})();
