/* Search: POST /v1/retrieve, then POST /v1/highlight for the passages' matching terms (the BM25 analyzer's
 * stems and compound parts); every stage's score as a bar. */
"use strict";

(() => {
  const { api, el, appendMarked, say, fail, number, plural } = GR;
  const LAST = "german-rag-last-search";
  const STAGES = { dense: "Dicht", bm25: "BM25", fused: "Fusion", rerank: "Neubewertung", citation: "Zitat" };
  let metaFields = {};
  let latest = 0; // only the newest search may fill the list (an older answer can arrive later)

  function setupOptions(info) {
    const form = document.getElementById("search-form");
    form.mode.value = info.default_mode;
    form.top_k.max = info.max_top_k;
    form.expand.max = info.max_expand;
    if (!form.dataset.ready) {
      form.top_k.value = info.default_top_k;
      form.expand.value = info.expand;
    }
    document.getElementById("rerank-field").hidden = !info.rerank;
    document.getElementById("rerank").checked = info.rerank;
    const mmr = document.getElementById("mmr-state");
    mmr.hidden = info.mmr === null;
    if (info.mmr !== null) mmr.textContent = "Vielfalt (MMR) ist aktiv, λ = " + number(info.mmr);
    metaFields = info.meta_fields || {};
    buildMetaFilters();
    form.dataset.ready = "1";
  }

  function buildMetaFilters() {
    const box = document.getElementById("meta-filters");
    box.replaceChildren();
    for (const [name, kind] of Object.entries(metaFields)) {
      const id = "meta-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
      if (kind === "keyword") {
        box.append(el("div", { class: "field" }, el("label", { for: id, text: name }),
          el("input", { id, type: "text", "data-meta": name, "data-kind": "eq" })));
        continue;
      }
      const type = kind === "datetime" ? "date" : "number";
      box.append(el("div", { class: "field" }, el("label", { for: id + "-from", text: name + " ab" }),
        el("input", { id: id + "-from", type, "data-meta": name, "data-kind": "gte" })));
      box.append(el("div", { class: "field" }, el("label", { for: id + "-to", text: name + " bis" }),
        el("input", { id: id + "-to", type, "data-meta": name, "data-kind": "lte" })));
    }
  }

  function range(from, to, asNumber) {
    const r = {};
    if (from !== "") r.gte = asNumber ? Number(from) : from;
    if (to !== "") r.lte = asNumber ? Number(to) : to;
    return Object.keys(r).length ? r : null;
  }

  function filtersOf(form) {
    const f = {};
    for (const name of ["source", "title", "heading_path"]) {
      const value = form[name].value.trim();
      if (value) f[name] = value;
    }
    const pages = range(form.page_from.value, form.page_to.value, true);
    if (pages) f.page = pages;
    const dates = range(form.date_from.value, form.date_to.value, false);
    if (dates) f.date = dates;
    for (const input of document.querySelectorAll("[data-meta]")) {
      const value = input.value.trim();
      if (!value) continue;
      const key = "meta." + input.dataset.meta;
      const typed = input.type === "number" ? Number(value) : value;
      if (input.dataset.kind === "eq") f[key] = typed;
      else (f[key] = f[key] || {})[input.dataset.kind] = typed;
    }
    return f;
  }

  function requestOf(form) {
    const body = { query: form.query.value.trim(), top_k: Number(form.top_k.value) || 5, mode: form.mode.value,
      filters: filtersOf(form), expand: Number(form.expand.value) || 0 };
    if (!document.getElementById("rerank-field").hidden) body.rerank = form.rerank.checked;
    return body;
  }

  /** Each stage's score as a bar scaled to the best score of that stage in this result list. */
  function scoreBars(p, best) {
    const list = el("dl", { class: "scores", "aria-label": "Bewertung je Stufe" });
    const entries = Object.entries(p.scores || {});
    if (p.relevance !== null && p.relevance !== undefined) entries.push(["relevance", p.relevance]);
    for (const [stage, value] of entries) {
      const top = stage === "relevance" ? 1 : best[stage];
      const share = top > 0 ? Math.max(0, Math.min(1, value / top)) : 0;
      const label = stage === "relevance" ? "Relevanz" : (STAGES[stage] || stage);
      list.append(el("div", { class: "score", "data-stage": stage },
        el("dt", {}, label),
        el("dd", {}, el("meter", { min: "0", max: "1", value: share.toFixed(4),
          "aria-label": label + " " + number(value) }), el("span", { class: "value" }, number(value)))));
    }
    return list;
  }

  function bestPerStage(passages) {
    const best = {};
    for (const p of passages) {
      for (const [stage, value] of Object.entries(p.scores || {})) best[stage] = Math.max(best[stage] || 0, value);
    }
    return best;
  }

  function renderPassage(p, rank, spans, query, best) {
    const title = (p.document && p.document.title) || p.source;
    const where = [];
    where.push(el("span", {}, "Quelle: ", el("span", { class: "source" }, p.source)));
    if (p.page !== null && p.page !== undefined) where.push(el("span", {}, "Seite " + number(p.page)));
    if (p.heading_path && p.heading_path.length) {
      where.push(el("span", { class: "heading-path" }, p.heading_path.join(" › ")));
    }
    if (p.document && p.document.date) where.push(el("span", {}, "Datum: " + GR.date(p.document.date)));
    const text = appendMarked(el("p", { class: "passage-text" }), p.text, spans, "term");
    return el("li", { class: "result", "data-chunk-id": p.chunk_id },
      el("article", { "aria-labelledby": "r" + rank },
        el("h3", { id: "r" + rank }, el("span", { class: "rank" }, rank + ". "), title),
        el("p", { class: "where" }, ...where.flatMap((w, i) => (i ? [" · ", w] : [w]))),
        text,
        scoreBars(p, best),
        el("p", {}, el("a", { href: GR.docLink(p, query), class: "doc-link" }, "Im Dokument zeigen"))));
  }

  async function search(form) {
    const body = requestOf(form);
    if (!body.query) return;
    sessionStorage.setItem(LAST, JSON.stringify({ query: body.query, mode: body.mode, top_k: body.top_k }));
    const list = document.getElementById("results");
    const summary = document.getElementById("result-summary");
    const mine = ++latest;
    say("Suche läuft …");
    list.setAttribute("aria-busy", "true");
    try {
      const result = await api("POST", "/v1/retrieve", body);
      const marks = result.passages.length
        ? await api("POST", "/v1/highlight", { query: body.query, texts: result.passages.map((p) => p.text) })
        : { spans: [], terms: [] };
      if (mine !== latest) return;
      const best = bestPerStage(result.passages);
      list.replaceChildren(...result.passages.map((p, i) => renderPassage(p, i + 1, marks.spans[i], body.query, best)));
      summary.textContent = result.passages.length
        ? plural(result.passages.length, "Treffer", "Treffer") + " in " + number(result.took_ms) + " ms (" +
          result.mode + "); Suchbegriffe: " + (marks.terms.join(", ") || "keine")
        : "Keine Treffer.";
      say("");
    } catch (error) {
      if (mine === latest) fail(error);
    } finally {
      if (mine === latest) list.removeAttribute("aria-busy");
    }
  }

  GR.page(async (info) => {
    setupOptions(info);
    const form = document.getElementById("search-form");
    if (!form.dataset.bound) {
      form.dataset.bound = "1";
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        search(form);
      });
    }
    const fromUrl = GR.params().get("q");
    const last = JSON.parse(sessionStorage.getItem(LAST) || "null");
    if (!form.query.value && (fromUrl || last)) {
      form.query.value = fromUrl || last.query;
      if (!fromUrl && last.mode) form.mode.value = last.mode;
      search(form);
    }
  });
})();
