/* Upload: drag and drop or choose files; each file is its own upload request (bytes sent as a progress bar),
 * then its job is polled (GET /v1/jobs/{id}) until the file's own result: chunks written, or the reason it failed. */
"use strict";

(() => {
  const { el, fail, number } = GR;
  const STATE = { queued: "In der Warteschlange", running: "Wird verarbeitet", succeeded: "Fertig", failed: "Fehlgeschlagen" };
  const FILE_STATUS = { ingested: "eingelesen", unchanged: "unverändert", skipped: "übersprungen", failed: "fehlgeschlagen",
    removed: "entfernt", pending: "wartet" };
  const POLL_MS = 400;

  function entry(file) {
    const bar = el("progress", { max: "100", value: "0", "aria-label": "Fortschritt " + file.name });
    const state = el("span", { class: "state" }, "Wird übertragen …");
    const report = el("p", { class: "report" });
    const item = el("li", { class: "upload", "data-name": file.name },
      el("span", { class: "name" }, file.name), " ", el("span", { class: "size" }, "(" + number(file.size) + " Bytes)"),
      " ", bar, " ", state, report);
    document.getElementById("uploads").prepend(item);
    return { item, bar, state, report };
  }

  function send(file, form, view) {
    return new Promise((resolve, reject) => {
      const data = new FormData();
      data.append("files", file, file.name);
      if (form.groups.value.trim()) data.append("groups", form.groups.value.trim());
      if (form.meta.value.trim()) data.append("meta", form.meta.value.trim());
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/documents");
      for (const [k, v] of Object.entries(GR.headers())) xhr.setRequestHeader(k, v);
      xhr.upload.onprogress = (event) => {
        if (event.lengthComputable) view.bar.value = Math.round((event.loaded / event.total) * 50);
      };
      xhr.onerror = () => reject(new GR.ApiError(0, "Der Dienst ist nicht erreichbar"));
      xhr.onload = () => {
        let body = {};
        try { body = JSON.parse(xhr.responseText); } catch (e) { /* an empty or non-JSON answer */ }
        if (xhr.status === 202) resolve(body);
        else reject(new GR.ApiError(xhr.status, body.error ? body.error.message : ""));
      };
      xhr.send(data);
    });
  }

  function fileReport(file) {
    const parts = [FILE_STATUS[file.status] || file.status];
    if (file.chunks) parts.push(number(file.chunks) + " Abschnitte");
    if (file.ocr_pages) parts.push(number(file.ocr_pages) + " Seiten per OCR");
    if (file.error) parts.push("Grund: " + file.error);
    return parts.join(" · ");
  }

  async function follow(job, view) {
    for (;;) {
      const now = await GR.api("GET", "/v1/jobs/" + encodeURIComponent(job.job_id));
      const file = now.files[0] || { status: "pending" };
      view.state.textContent = STATE[now.state] || now.state;
      view.bar.value = now.state === "queued" ? 60 : now.state === "running" ? 80 : 100;
      if (now.state === "succeeded" || now.state === "failed") {
        view.report.textContent = fileReport(file) + (now.error && !file.error ? " · " + now.error : "");
        view.item.dataset.state = file.status === "failed" ? "failed" : now.state;
        return;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  async function uploadOne(file, form) {
    const view = entry(file);
    try {
      const job = await send(file, form, view);
      view.bar.value = 50;
      await follow(job, view);
    } catch (error) {
      view.state.textContent = "Fehlgeschlagen";
      view.report.textContent = error.message;
      view.item.dataset.state = "failed";
      view.bar.value = 100;
    }
  }

  async function uploadAll(files, form) {
    // one at a time: the service takes a bounded number of uploads at once and runs one ingest worker
    for (const file of files) await uploadOne(file, form);
  }

  GR.page(async (info) => {
    const form = document.getElementById("upload-form");
    if (!info.may_write || form.dataset.bound) return;
    form.dataset.bound = "1";
    document.getElementById("drop-hint").textContent = "Dateien hierher ziehen oder auswählen (" +
      info.extensions.join(", ") + "; höchstens " + number(info.max_upload_bytes) + " Bytes je Datei).";
    const input = document.getElementById("files");
    const zone = document.getElementById("drop-zone");
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!input.files.length) {
        fail("Bitte zuerst Dateien auswählen.");
        return;
      }
      const files = Array.from(input.files);
      input.value = "";
      uploadAll(files, form);
    });
    zone.addEventListener("dragover", (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (event) => {
      event.preventDefault();
      zone.classList.remove("over");
      uploadAll(Array.from(event.dataTransfer.files), form);
    });
  });
})();
