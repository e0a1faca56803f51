"""A fresh clone runs the suite: the fixtures are small and documented, and CI refuses to skip the large-data tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
# one light test on the whole sets (its shared_data parameter set) stands in for all of them
PROBE = ["tests/test_datasets.py::test_germandpr_counts", "-k", "shared_data"]


def fixture_files() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.name != "README.md")


def test_fixtures_are_small_and_each_is_listed_with_its_licence():
    files = fixture_files()
    assert files and sum(p.stat().st_size for p in files) < 2_000_000
    readme = (FIXTURES / "README.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(FIXTURES)) for p in files if f"`{p.relative_to(FIXTURES)}`" not in readme]
    assert not missing, f"tests/fixtures/README.md does not list {missing}"


def run_probe(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["GERMAN_RAG_SHARED_DATA"] = str(tmp_path / "fehlt")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *PROBE], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("ci", ["true", "1"])
def test_ci_without_the_shared_data_fails_and_names_the_folder(tmp_path, ci):
    proc = run_probe(tmp_path, ci)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert f"shared data folder {tmp_path / 'fehlt'} does not exist" in proc.stderr


@pytest.mark.parametrize("ci", [None, "false"])
def test_outside_ci_the_shared_data_tests_skip(tmp_path, ci):
    proc = run_probe(tmp_path, ci)
    assert proc.returncode == pytest.ExitCode.OK, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout and "shared data not found" in proc.stdout
