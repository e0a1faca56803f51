/* Context: POST /v1/context, the numbered, cited text a generator would receive within a token budget. */
"use strict";

(() => {
  const { api, el, say, fail, number } = GR;

  function citation(c, query) {
    const where = [c.source];
    if (c.page !== null && c.page !== undefined) where.push("Seite " + number(c.page));
    if (c.heading_path && c.heading_path.length) where.push(c.heading_path.join(" › "));
    if (c.cut) where.push("gekürzt");
    const link = GR.docLink({ doc_id: c.doc_id, chunk_id: c.chunk_ids[0], start: c.start, end: c.end }, query);
    return el("li", { value: String(c.number) },
      el("span", { class: "title" }, "[" + c.number + "] " + (c.title || c.source)), " ",
      el("span", { class: "where" }, where.join(" · ")), " ",
      el("a", { href: link, class: "doc-link" }, "Im Dokument zeigen"));
  }

  GR.page(async (info) => {
    const form = document.getElementById("context-form");
    if (!form.budget.value) form.budget.value = info.context_budget;
    if (form.dataset.bound) return;
    form.dataset.bound = "1";
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const body = { query: form.query.value.trim(), budget: Number(form.budget.value) || info.context_budget,
        prompt: form.prompt.checked };
      if (form.strategy.value) body.strategy = form.strategy.value;
      say("Kontext wird gebildet …");
      try {
        const ctx = await api("POST", "/v1/context", body);
        document.getElementById("ctx-text").textContent = ctx.prompt || ctx.text;
        document.getElementById("citations").replaceChildren(...ctx.citations.map((c) => citation(c, body.query)));
        document.getElementById("ctx-summary").textContent = ctx.abstained
          ? "Keine Stelle ist relevant genug: nicht in den Unterlagen."
          : number(ctx.tokens) + " von " + number(ctx.budget) + " Tokens (" + ctx.tokenizer + "), Verfahren " +
            ctx.strategy + ", " + number(ctx.citations.length) + " Quellen";
        say("");
      } catch (error) {
        fail(error);
      }
    });
  });
})();
