import json
import re

import pytest

from ingest.parse import parse_file
from pipelines.cli.main import main
from retrieval.expand import merge_spans
from retrieval.rerank import CrossEncoderReranker, RerankerOptions
from retrieval.schema import Passage


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory, tiny_model_dir):
    """A random 2-layer BERT cross-encoder (one relevance logit) with the tiny German tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    out = tmp_path_factory.mktemp("tiny-cross-encoder")
    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=128, num_labels=1)
    BertForSequenceClassification(config).eval().save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def passage(i: int, text: str) -> Passage:
    return Passage(f"c{i}", "d", text, "s", None, (), 0, len(text), i, 1.0 / (i + 1), {"fused": 1.0 / (i + 1)})


TEXTS = ["Der Urlaub beträgt 24 Werktage.", "Die Arbeitszeit darf acht Stunden nicht überschreiten.",
         "Das Gericht entscheidet.", "Kündigungsfristen verlängern sich.", "Urlaub im Sommer."]


def test_rerank_orders_by_cross_encoder_score(tiny_cross_encoder):
    reranker = CrossEncoderReranker(RerankerOptions(str(tiny_cross_encoder), batch_size=2))
    passages = [passage(i, t) for i, t in enumerate(TEXTS)]
    scores = reranker.score("Wie viel Urlaub?", TEXTS)
    ranked = reranker.rerank("Wie viel Urlaub?", passages, top_k=3)
    expected = sorted(range(len(TEXTS)), key=lambda i: -scores[i])[:3]
    assert [p.chunk_id for p in ranked] == [f"c{i}" for i in expected]
    for p in ranked:
        assert p.scores["rerank"] == pytest.approx(scores[int(p.chunk_id[1:])], abs=1e-5)
        assert "fused" in p.scores  # earlier stages' scores are kept
    assert passages[0].scores == {"fused": 1.0}  # inputs untouched


def test_batching_does_not_change_scores(tiny_cross_encoder):
    one = CrossEncoderReranker(RerankerOptions(str(tiny_cross_encoder), batch_size=1)).score("Urlaub", TEXTS)
    many = CrossEncoderReranker(RerankerOptions(str(tiny_cross_encoder), batch_size=8)).score("Urlaub", TEXTS)
    assert one == pytest.approx(many, abs=1e-4)


def test_long_pairs_are_counted_and_cut_in_the_passage(tiny_cross_encoder):
    reranker = CrossEncoderReranker(RerankerOptions(str(tiny_cross_encoder)))
    long_text = "Urlaub " * 400
    assert reranker.pair_tokens("Urlaub?", long_text) > reranker.max_length == 128
    assert len(reranker.score("Urlaub?", [long_text])) == 1


def test_merge_spans_by_hand():
    assert merge_spans([(0, 10, "abcdefghij"), (8, 14, "ijklmn")]) == (0, 14, "abcdefghijklmn")
    assert merge_spans([(12, 15, "xyz"), (0, 10, "abcdefghij")]) == (0, 15, "abcdefghij\n\nxyz")
    assert merge_spans([(0, 10, "abcdefghij"), (11, 13, "kl")]) == (0, 13, "abcdefghij kl")
    assert merge_spans([(0, 10, "abcdefghij"), (2, 5, "cde")]) == (0, 10, "abcdefghij")


def query_json(capsys, *args):
    code = main(["query", *args, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out)["passages"]


def test_cli_expand_returns_neighbours_with_exact_spans(capsys, settings_env, fixtures):
    law = fixtures / "gesetze/b/burlg/index.md"
    assert main(["ingest", str(law), "--chunk-tokens", "64", "--chunk-overlap", "0", "--json"]) == 0
    capsys.readouterr()
    plain = query_json(capsys, "Wartezeit Urlaubsanspruch", "--top-k", "1", "--mode", "bm25")[0]
    wide = query_json(capsys, "Wartezeit Urlaubsanspruch", "--top-k", "1", "--mode", "bm25", "--expand", "1")[0]
    assert wide["start"] <= plain["start"] and wide["end"] >= plain["end"]
    assert len(wide["text"]) > len(plain["text"])
    doc = parse_file(law).text
    squash = lambda t: re.sub(r"\s+", " ", t)  # noqa: E731 - the gap between chunks is whitespace
    assert squash(doc[wide["start"] : wide["end"]]) == squash(wide["text"])


def test_cli_rerank(capsys, settings_env, tiny_cross_encoder, monkeypatch):
    (settings_env / "a.txt").write_text("Der Urlaub beträgt 24 Werktage. Urlaub ist wichtig.", encoding="utf-8")
    (settings_env / "b.txt").write_text("Die Arbeitszeit darf acht Stunden nicht überschreiten.", encoding="utf-8")
    assert main(["ingest", str(settings_env / "a.txt"), str(settings_env / "b.txt"), "--json"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("GERMAN_RAG_RERANK_MODEL", str(tiny_cross_encoder))
    hits = query_json(capsys, "Urlaub", "--rerank", "--top-k", "2")
    assert all("rerank" in h["scores"] and "fused" in h["scores"] for h in hits)
    assert hits[0]["scores"]["rerank"] >= hits[1]["scores"]["rerank"]
    monkeypatch.setenv("GERMAN_RAG_RERANK_MODEL", str(settings_env / "fehlt"))
    assert main(["query", "Urlaub", "--rerank"]) == 2
    assert "fehlt" in capsys.readouterr().err


def test_compact_vectors_keep_pairwise_cosines():
    import math

    from retrieval.diversify import compact_vectors

    sparse = {"a": {1: 1.0, 2: 2.0, 9: 3.0}, "b": {1: 1.0, 3: 1.0}, "c": {2: 1.0, 7: 5.0}}

    def cos(x, y):
        dot = sum(w * y.get(t, 0.0) for t, w in x.items())
        return dot / math.sqrt(sum(w * w for w in x.values())) / math.sqrt(sum(w * w for w in y.values()))

    dense = compact_vectors(sparse)
    for x in sparse:
        for y in sparse:
            u, v = dense[x], dense[y]
            norm = math.sqrt(sum(p * p for p in u) * sum(q * q for q in v))
            got = sum(p * q for p, q in zip(u, v, strict=True)) / norm
            assert got == pytest.approx(cos(sparse[x], sparse[y]), abs=1e-9)
    assert len(dense["a"]) == 2 + 3  # shared terms 1 and 2, one private column per passage


def test_mmr_demotes_a_near_duplicate():
    from ingest.sparse import SparseEncoder
    from retrieval.diversify import diversify

    texts = ["Der Urlaub beträgt 24 Werktage im Jahr.", "Der Urlaub beträgt 24 Werktage im Jahr!",
             "Die Wartezeit für den Urlaub beträgt sechs Monate."]
    passages = [passage(i, t) for i, t in enumerate(texts)]
    assert [p.chunk_id for p in diversify(SparseEncoder(), passages, 3, 1.0)] == ["c0", "c1", "c2"]
    assert [p.chunk_id for p in diversify(SparseEncoder(), passages, 3, 0.5)] == ["c0", "c2", "c1"]
