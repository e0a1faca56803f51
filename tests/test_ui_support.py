"""A served search page for the UI tests: a real uvicorn server with a read and a write key and a few German
documents uploaded through the API (helpers only, no tests here)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.test_service_support import EXAMPLES, LiveServer, live_server, service_settings, wait_job

READ_KEY = "leser-schluessel-0123456789"
WRITE_KEY = "schreiber-schluessel-0123456789"
# A document whose text is markup: the page must show it as text and never run it.
HOSTILE_NAME = "markup.txt"
HOSTILE_TEXT = ("Hinweis zur Sicherheit im Betrieb.\n\n<script>window.__pwned = 1;</script>\n\n"
                "<img src=x onerror=\"window.__pwned = 2\"> Bitte melden Sie Auffälligkeiten sofort.\n")
# A long document whose one interesting paragraph lies far down: the document view must scroll to it.
LONG_NAME = "betriebsordnung.txt"
LONG_MARKER = "Die Kantine öffnet werktags um halb zwölf für alle Beschäftigten."


def long_text() -> str:
    filler = [f"Absatz {i}: Die Betriebsordnung regelt den Ablauf im Haus, die Ordnung in den Räumen und die "
              f"Pflichten aller Mitarbeitenden im Abschnitt {i}." for i in range(1, 61)]
    filler.insert(45, LONG_MARKER)
    return "\n\n".join(filler) + "\n"


def upload(live: LiveServer, files: list[tuple[str, bytes]]) -> dict:
    with live.client(WRITE_KEY) as c:
        r = c.post("/v1/documents", files=[("files", (n, b, "application/octet-stream")) for n, b in files])
        assert r.status_code == 202, r.text
        job = wait_job(c, r.json()["job_id"])
    assert job["state"] == "succeeded", job
    return job


@contextmanager
def ui_server(model_dir: Path, root: Path) -> Iterator[LiveServer]:
    """The service with keys, the examples, the hostile and the long document stored."""
    (root / "uploads").mkdir()
    settings = service_settings(model_dir, root / "qdrant", read_keys=READ_KEY, write_keys=WRITE_KEY,
                                upload_dir=str(root / "uploads"), max_upload_files=5)
    with live_server(settings) as live:
        upload(live, [(n, (EXAMPLES / n).read_bytes()) for n in ("arbzg.md", "burlg.md", "hinweise.txt")]
               + [(HOSTILE_NAME, HOSTILE_TEXT.encode()), (LONG_NAME, long_text().encode())])
        yield live
