"""#10.15: a command with nothing to do pays for nothing: no torch or transformers import for `config`,
`--help`, `query --mode bm25`, `verify` and an unchanged re-ingest, and no parse worker process when
triage finds nothing to parse. Each command runs in a fresh interpreter (sys.modules is the evidence);
no timing is asserted (docs/bench/startup.md has the measured seconds)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli.main import main
from tests.conftest import ROOT

# qdrant_client too: the default edge engine never needs it (ingest/store/filters.py keeps the filters neutral)
HEAVY = ("torch", "transformers", "sentence_transformers", "unstructured", "langchain_text_splitters", "qdrant_client")
# Runs the CLI in process, then reports the heavy modules it imported and its living child processes
# (the parse worker's fork server is one). /proc is read directly: no psutil dependency.
PROBE = f"""
import json, os, sys
from pipelines.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
me = str(os.getpid())
children = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        with open(f"/proc/{{pid}}/stat") as fh:
            ppid = fh.read().rsplit(")", 1)[1].split()[1]
    except OSError:
        continue
    if ppid == me:
        children.append(pid)
heavy = [m for m in {HEAVY!r} if m in sys.modules]
print("PROBE " + json.dumps({{"code": code, "heavy": heavy, "children": children}}))
"""

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")


def probe(env: dict[str, str], *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, env=env,
                          cwd=env["GERMAN_RAG_TEST_CWD"], timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("PROBE ")]
    assert lines, f"exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("PROBE "):])


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, minilm_dir):
    """A collection of two small German files, ingested once with MiniLM (in this process)."""
    base = tmp_path_factory.mktemp("startup")
    docs = base / "docs"
    docs.mkdir()
    (docs / "kuendigung.txt").write_text("Die Kündigungsfrist beträgt vier Wochen zum Monatsende.\n",
                                         encoding="utf-8")
    (docs / "kaution.md").write_text("# Kaution\n\nDer Vermieter muss die Kaution getrennt anlegen.\n",
                                     encoding="utf-8")
    env = {"GERMAN_RAG_EMBED_MODEL": str(minilm_dir), "GERMAN_RAG_QDRANT_PATH": str(base / "qdrant")}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        assert main(["ingest", str(docs), "--json"]) == 0
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GERMAN_RAG_")}
    return docs, {**clean, **env, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GERMAN_RAG_TEST_CWD": str(base)}


@pytest.mark.parametrize("args", [
    ["--help"],
    ["config"],
    ["config", "--json"],
    ["query", "--mode", "bm25", "Kündigungsfrist"],
    ["verify", "{docs}"],
    ["ingest", "{docs}"],
])
def test_commands_with_nothing_to_embed_import_no_model_library(ingested, args):
    """#10.15: no torch/transformers/unstructured/langchain import where nothing is embedded or parsed."""
    docs, env = ingested
    result = probe(env, *[a.format(docs=docs) for a in args])
    assert result["code"] == 0
    assert result["heavy"] == []


def test_unchanged_reingest_starts_no_parse_worker_and_a_changed_one_does(ingested, capsys):
    """#10.15: the parse worker (and its fork server) starts only when triage finds a file to parse."""
    docs, env = ingested
    unchanged = probe(env, "ingest", str(docs), "--json")
    assert unchanged["code"] == 0 and unchanged["children"] == []
    new = docs.parent / "neu.txt"  # outside the folder: the collection the other tests see stays intact
    new.write_text("Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage.\n", encoding="utf-8")
    changed = probe(env, "ingest", str(new), "--json")
    assert changed["code"] == 0
    assert len(changed["children"]) >= 1  # the fork server, alive until the process ends
