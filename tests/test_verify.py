"""`german-rag verify` and `german-rag ingest --shard I/N`, through the CLI on the tiny model."""

from __future__ import annotations

import json

from qdrant_client import QdrantClient, models

from pipelines.cli.main import main
from pipelines.indexing.discover import in_shard, parse_shard

TEXT = "Die Kündigungsfrist beträgt vier Wochen. Der Urlaub beträgt vierundzwanzig Werktage. "


def corpus(root, n=6):
    docs = root / "docs"
    docs.mkdir()
    for i in range(n):
        (docs / f"datei_{i}.txt").write_text(f"Datei {i}. " + TEXT * (2 + i), encoding="utf-8")
    return docs


def verify(capsys, docs) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["verify", str(docs), "--json"])
    return code, json.loads(capsys.readouterr().out)


def tamper(settings_env, fn) -> None:
    client = QdrantClient(path=str(settings_env / "qdrant"))
    try:
        fn(client)
    finally:
        client.close()


def test_verify_finds_every_kind_of_problem(settings_env, capsys, monkeypatch):
    monkeypatch.setenv("GERMAN_RAG_QDRANT_ENGINE", "local")  # the damage below is done with qdrant-client directly
    monkeypatch.setenv("GERMAN_RAG_CHUNK_TOKENS", "24")  # several chunks per file
    monkeypatch.setenv("GERMAN_RAG_CHUNK_OVERLAP", "4")
    docs = corpus(settings_env)
    assert main(["ingest", str(docs), "--json"]) == 0
    code, report = verify(capsys, docs)
    assert code == 0 and report["ok"] and report["sources_checked"] == 6 and report["documents"] == 6

    (docs / "datei_0.txt").write_text("Geändert. " + TEXT, encoding="utf-8")  # outdated
    (docs / "datei_1.txt").unlink()  # orphan
    (docs / "neu.txt").write_text(TEXT, encoding="utf-8")  # missing

    def damage(client: QdrantClient) -> None:
        recs, _ = client.scroll("german_rag", limit=1000, with_payload=True, with_vectors=True)
        by_source: dict = {}
        for r in recs:
            by_source.setdefault(r.payload["source"], []).append(r)
        two = sorted(by_source[str(docs / "datei_2.txt")], key=lambda r: r.payload["chunk_index"])
        client.delete("german_rag", models.PointIdsList(points=[two[0].id]))  # incomplete
        three = by_source[str(docs / "datei_3.txt")][0]  # duplicate: same chunk under another id
        client.upsert("german_rag", [models.PointStruct(id="00000000-0000-0000-0000-000000000001",
                                                        vector=three.vector, payload=three.payload)])
        four = by_source[str(docs / "datei_4.txt")][0]  # stale: a second version's chunk
        client.upsert("german_rag", [models.PointStruct(id="00000000-0000-0000-0000-000000000002",
                      vector=four.vector, payload={**four.payload, "doc_id": "alte-fassung", "chunk_count": 1,
                                                   "chunk_index": 0,
                                                   "chunk_id": "00000000-0000-0000-0000-000000000002"})])

    tamper(settings_env, damage)
    code, report = verify(capsys, docs)
    assert code == 1 and not report["ok"]
    kinds = {(p["kind"], p["source"].rsplit("/", 1)[-1]) for p in report["problems"]}
    assert ("outdated", "datei_0.txt") in kinds
    assert ("orphan", "datei_1.txt") in kinds
    assert ("missing", "neu.txt") in kinds
    assert ("incomplete", "datei_2.txt") in kinds
    assert ("duplicate", "datei_3.txt") in kinds and ("bad_id", "datei_3.txt") in kinds
    assert ("stale", "datei_4.txt") in kinds
    assert ("outdated", "datei_5.txt") not in kinds and all(k[1] != "datei_5.txt" for k in kinds)
    capsys.readouterr()
    assert main(["verify", str(docs)]) == 1
    text = capsys.readouterr().out
    assert "problem(s)" in text and "ORPHAN:" in text and "MISSING:" in text


def test_verify_reports_a_model_mismatch(settings_env, capsys, minilm_dir, monkeypatch):
    docs = corpus(settings_env, n=1)
    assert main(["ingest", str(docs), "--json"]) == 0
    monkeypatch.setenv("GERMAN_RAG_EMBED_MODEL", str(minilm_dir))
    code, report = verify(capsys, docs)
    assert code == 1 and report["problems"][0]["kind"] == "model"


def test_shards_split_a_corpus_without_duplicates(settings_env, capsys):
    docs = corpus(settings_env, n=8)
    seen: list[str] = []
    for i in range(3):
        capsys.readouterr()
        assert main(["ingest", str(docs), "--shard", f"{i}/3", "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        seen += [f["source"] for f in report["files"]]
    assert sorted(seen) == sorted(str(p) for p in docs.iterdir())  # every file exactly once
    code, report = verify(capsys, docs)
    assert code == 0, report  # together the shards made the whole collection
    assert [in_shard("/a/b.txt", i, 4) for i in range(4)].count(True) == 1
    assert parse_shard("2/5") == (2, 5)
    for bad in ["5/5", "x/3", "1", "-1/3", "0/0"]:
        capsys.readouterr()
        assert main(["ingest", str(docs), f"--shard={bad}"]) == 2
        assert "--shard" in capsys.readouterr().err


def test_verify_reports_points_without_access_fields_once_per_source(settings_env, capsys, monkeypatch):
    """#12.4: points from before tenants existed (fields null, or absent) are one `no_access` problem per source,
    with their count; a source whose points all carry them is not reported."""
    monkeypatch.setenv("GERMAN_RAG_QDRANT_ENGINE", "local")  # the old points are made with qdrant-client directly
    monkeypatch.setenv("GERMAN_RAG_CHUNK_TOKENS", "24")  # several chunks per file
    monkeypatch.setenv("GERMAN_RAG_CHUNK_OVERLAP", "4")
    docs = corpus(settings_env, n=3)
    assert main(["ingest", str(docs), "--json"]) == 0

    def of(source: str) -> models.FilterSelector:
        return models.FilterSelector(filter=models.Filter(must=[models.FieldCondition(
            key="source", match=models.MatchValue(value=str(docs / source)))]))

    def make_old(client: QdrantClient) -> None:
        client.set_payload("german_rag", {"tenant": None, "groups": None}, points=of("datei_0.txt"))
        client.delete_payload("german_rag", ["tenant", "groups"], points=of("datei_1.txt"))

    tamper(settings_env, make_old)
    code, report = verify(capsys, docs)
    assert code == 1
    problems = {p["source"].rsplit("/", 1)[-1]: p for p in report["problems"]}
    assert set(problems) == {"datei_0.txt", "datei_1.txt"}
    assert all(p["kind"] == "no_access" and "tenant 'default'" in p["detail"] for p in problems.values())
    counts = {name: int(p["detail"].split(" of ")[0]) for name, p in problems.items()}
    assert counts["datei_0.txt"] > 1 and counts["datei_1.txt"] > 1  # one problem for several points
    capsys.readouterr()
    assert main(["verify", str(docs)]) == 1
    assert "NO_ACCESS:" in capsys.readouterr().out
    # the migration: an unchanged re-ingest writes the missing fields (payload only, nothing embedded), then
    # verify is clean
    assert main(["ingest", str(docs), "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["unchanged"] == 3 and again["points_written"] == 0
    assert again["points_updated"] == counts["datei_0.txt"] + counts["datei_1.txt"]
    code, report = verify(capsys, docs)
    assert code == 0 and report["problems"] == []
