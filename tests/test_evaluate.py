import json
import os
from pathlib import Path

from pipelines.cli.main import main


def write_beir(folder):
    folder.mkdir()
    docs = {
        "d1": "Das Bundesverfassungsgericht entscheidet über Verfassungsbeschwerden.",
        "d2": "Der Urlaub beträgt jährlich mindestens vierundzwanzig Werktage.",
        "d3": "Die Kündigungsfristen verlängern sich mit der Dauer der Beschäftigung.",
    }
    queries = {"q1": "Gericht für Beschwerden", "q2": "Wie viele Werktage Urlaub?",
               "q3": "Wann verlängern sich Kündigungsfristen?"}
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in docs.items()))
    (folder / "queries.jsonl").write_text("\n".join(json.dumps({"_id": k, "text": v}) for k, v in queries.items()))
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td3\t1\n")


def test_eval_ingests_through_the_real_path_and_scores_every_mode(settings_env, capsys):
    write_beir(settings_env / "beir")
    report_dir = settings_env / "report"
    code = main(["eval", str(settings_env / "beir"), "--format", "beir", "--report", str(report_dir), "--json",
                 "--ablation"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["documents"] == 3 and report["queries"] == 3 and report["ingest"]["ingested"] == 3
    assert {"dense", "bm25", "hybrid", "bm25 plain words", "bm25 full analyzer"} <= set(report["modes"])
    # "Gericht" and "Beschwerden" only match d1 once compounds are split
    assert report["modes"]["bm25 plain words"]["per_query"]["q1"]["mrr_at_5"] == 0.0
    assert report["modes"]["bm25 full analyzer"]["per_query"]["q1"]["mrr_at_5"] == 1.0
    bm25 = report["modes"]["bm25"]["mean"]
    assert bm25["mrr_at_5"] == 1.0 and bm25["recall_at_1"] == 1.0  # each query shares a stem with its doc
    for mode in report["modes"].values():
        assert 0 < mode["mean"]["recall_at_100"] <= 1.0
        assert set(mode["per_query"]) == {"q1", "q2", "q3"}
    assert {p.suffix for p in report_dir.iterdir()} == {".md", ".json", ".png"}
    written = next(report_dir.glob("*.md")).read_text() + next(report_dir.glob("*.json")).read_text()
    assert "| bm25 |" in written
    # #11.6: a committed report names the model, not the folder it was loaded from on this machine
    assert str(settings_env) not in written and str(Path(os.environ["GERMAN_RAG_EMBED_MODEL"]).parent) not in written
