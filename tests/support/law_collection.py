"""A small real collection for the framework adapter tests: German laws from tests/fixtures ingested through
the real ingest path (parse, chunk, embed, BM25) into the embedded edge store."""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.api import ingest_paths
from pipelines.config import Settings

# Markdown laws with front-matter titles: small enough to ingest in seconds with the tiny model.
LAWS = ("b/burlg", "p/prodhaftg", "a/arbzg")
BURLG_TITLE = "Mindesturlaubsgesetz für Arbeitnehmer"
URLAUB_QUESTION = "Wie viele Werktage beträgt der Urlaub jährlich?"
README = Path(__file__).resolve().parents[2] / "README.md"


def law_settings(fixtures: Path, model_dir: Path, store_dir: Path, **overrides: object) -> Settings:
    """Settings over a fresh edge store under `store_dir` with the laws ingested (collection `gesetze`)."""
    settings = Settings(embed_model=str(model_dir), qdrant_path=str(store_dir / "qdrant"), collection="gesetze",
                        qdrant_engine="edge", **overrides)  # type: ignore[arg-type]
    paths = [str(fixtures / "gesetze" / law / "index.md") for law in LAWS]
    report = ingest_paths(settings, paths, progress=False)
    assert report.count("ingested") == len(LAWS) and report.summary()["balanced"], report.summary()
    return settings


def readme_snippet(name: str) -> str:
    """The fenced Python block after `<!-- snippet: NAME -->` in README.md: the README's example, run as is."""
    match = re.search(rf"<!-- snippet: {name} -->\s*```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert match, f"README.md has no snippet {name!r}"
    return match.group(1)
