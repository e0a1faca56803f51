"""answer_in_context@B in `german-rag eval`: the gold answer inside the packed context, per mode and strategy
(the fixtures' XQuAD-de excerpt, the tiny model, the real ingest path), and the matching rule."""

from __future__ import annotations

import json

from pipelines.cli.main import main
from pipelines.evaluation.context_eval import answer_found
from pipelines.evaluation.datasets import load_dataset


def test_answer_found_ignores_headers_and_whitespace_but_not_case():
    context = "[1] Super_Bowl.txt · Denver Broncos\nDie Broncos  gewannen\n\nden Super Bowl 50."
    assert answer_found(context, ["Broncos gewannen den"]) and answer_found(context, ["x", "Super Bowl 50"])
    assert not answer_found(context, ["Denver Broncos"])  # only in the header line
    assert not answer_found(context, ["die broncos"]) and not answer_found(context, ["", "  "])


def test_squad_answers_and_the_article_variant(fixtures):
    paragraphs = load_dataset(fixtures / "xquad-de", "squad")
    articles = load_dataset(fixtures / "xquad-de", "squad-articles")
    assert paragraphs.answers.keys() == paragraphs.queries.keys() == articles.queries.keys()
    assert len(articles.corpus) < len(paragraphs.corpus)
    for qid, answers in paragraphs.answers.items():
        (doc,) = paragraphs.qrels[qid]
        assert answers and answers[0] in paragraphs.corpus[doc].text
        (article,) = articles.qrels[qid]
        assert paragraphs.corpus[doc].text in articles.corpus[article].text


def test_eval_context_rows_per_mode_and_strategy(settings_env, fixtures, capsys):
    code = main(["eval", str(fixtures / "xquad-de"), "--format", "squad", "--mode", "bm25", "--context", "topk",
                 "--context", "merge", "--context", "focus", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    context = report["context"]
    assert context["counter"] == "estimate" and context["budgets"] == [256, 512, 1024, 2048]
    assert set(context["rows"]) == {"bm25 topk", "bm25 merge", "bm25 focus"}
    for row in context["rows"].values():
        shares = [row[f"answer_in_context_at_{b}"] for b in context["budgets"]]
        # more budget, more answers: true on this set (greedy packing is not monotone per question in general)
        assert shares == sorted(shares) and 0 < shares[-1] <= 1, row
        assert all(row[f"tokens_at_{b}"] <= b for b in context["budgets"]) and row["questions"] == 225
    code = main(["eval", str(fixtures / "xquad-de"), "--context", "all", "--format", "beir"])
    assert code != 0
