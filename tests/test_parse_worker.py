import json
import os
import subprocess
import sys
import textwrap

from ingest.limits import Limits
from ingest.parse_worker import ParseWorker


def test_a_dead_worker_is_replaced_between_files(tmp_path):
    first, second = tmp_path / "a.txt", tmp_path / "b.txt"
    first.write_text("Erster Text über Urlaub.", encoding="utf-8")
    second.write_text("Zweiter Text über Arbeitszeit.", encoding="utf-8")
    worker = ParseWorker(Limits(parse_timeout_s=60))
    try:
        assert "Urlaub" in worker.parse(first, "a").text
        if worker._proc is not None:  # killed from outside, e.g. by the OOM killer
            worker._proc.kill()
            worker._proc.join()
        assert "Arbeitszeit" in worker.parse(second, "b").text
    finally:
        worker.close()


def test_library_call_from_a_script_without_main_guard(tmp_path, tiny_model_dir):
    """multiprocessing cannot start workers while such a script is imported: parse in process instead."""
    (tmp_path / "doc.txt").write_text("Der Urlaub beträgt 24 Werktage.", encoding="utf-8")
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(f"""
        import json
        from pipelines.api import ingest_paths
        from pipelines.config import load_settings
        settings = load_settings(embed_model={str(tiny_model_dir)!r}, qdrant_path={str(tmp_path / "q")!r})
        print(json.dumps(ingest_paths(settings, [{str(tmp_path / "doc.txt")!r}], progress=False).summary()))
    """))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["ingested"] == 1 and summary["failed"] == 0
