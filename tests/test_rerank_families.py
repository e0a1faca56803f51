"""The reranker loads BERT, ELECTRA and XLM-RoBERTa cross-encoders (tiny random ones built here, saved like the
hub's) through its real loading code, feeds each family what it was trained with, and refuses what is not a
cross-encoder with the configured setting's name."""

import json
import math

import pytest

from pipelines.api import open_retriever
from pipelines.build import build_reranker
from pipelines.cli.main import main
from pipelines.config import Settings
from retrieval.rerank import CrossEncoderReranker, RerankerOptions
from retrieval.schema import RerankerUnavailableError
from tests.conftest import FIXTURES
from tests.support import cross_encoders as ce
from tests.support.random_model import german_sample_texts

FAMILIES = ["bert", "electra", "xlmr"]
BUILDERS = {"bert": ce.build_bert, "electra": ce.build_electra, "xlmr": ce.build_xlmr}
LIMITS = {"bert": 128, "electra": 128, "xlmr": 64}  # bert/electra: max_position_embeddings; xlmr: 66 - 2
QUERY = "Wie viele Werktage Urlaub stehen Arbeitnehmern zu?"
TEXTS = ["Der Urlaub beträgt jährlich mindestens 24 Werktage.",
         "Die Arbeitszeit darf acht Stunden nicht überschreiten.",
         "Das Bundesverfassungsgericht entscheidet über Verfassungsbeschwerden.", "Urlaub im Sommer an der Ostsee."]


@pytest.fixture(scope="session")
def sample_texts():
    return german_sample_texts(FIXTURES, 100_000)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory, sample_texts):
    """(family, labels) -> a saved tiny cross-encoder directory."""
    root = tmp_path_factory.mktemp("cross-encoders")
    return {(fam, n): BUILDERS[fam](root / f"{fam}-{n}", sample_texts, num_labels=n)
            for fam in FAMILIES for n in (1, 2)}


def reranker(path, **kw) -> CrossEncoderReranker:
    return CrossEncoderReranker(RerankerOptions(str(path), setting="rerank_model (GERMAN_RAG_RERANK_MODEL)", **kw))


def by_hand(path, query, texts, token_types):
    """The logits of a plain transformers forward pass with the family's own inputs."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    enc = tok([query] * len(texts), texts, padding=True, return_token_type_ids=token_types, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc).logits.float()


@pytest.mark.parametrize("labels", [1, 2])
@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_scores_like_its_own_forward_pass(family_dirs, family, labels):
    import torch

    path = family_dirs[family, labels]
    scores = reranker(path, batch_size=3).score(QUERY, TEXTS)
    assert scores == reranker(path, batch_size=3).score(QUERY, TEXTS)  # deterministic
    assert scores == pytest.approx(reranker(path, batch_size=1).score(QUERY, TEXTS), abs=1e-5)  # padding-free
    logits = by_hand(path, QUERY, TEXTS, token_types=family != "xlmr")
    if labels == 1:
        assert scores == pytest.approx(logits[:, 0].tolist(), abs=1e-5)
    else:  # log-odds of the relevant class: its sigmoid is the relevant class's softmax probability
        relevant = torch.softmax(logits, dim=1)[:, 1].tolist()
        assert [1 / (1 + math.exp(-s)) for s in scores] == pytest.approx(relevant, abs=1e-5)
    assert len(set(scores)) == len(TEXTS)  # a random head still tells the passages apart


@pytest.mark.parametrize("family", FAMILIES)
def test_family_inputs_and_limit_come_from_the_checkpoint(family_dirs, family):
    r = reranker(family_dirs[family, 1])
    parts = r._parts()
    assert parts.token_types is (family != "xlmr")  # BERT/ELECTRA segment ids; XLM-R has one segment type
    assert parts.relevant is None and not parts.lowercase
    assert r.max_length == LIMITS[family]
    assert reranker(family_dirs[family, 1], max_length=32).max_length == 32


def test_bert_segment_ids_reach_the_model_though_its_tokenizer_omits_them(family_dirs):
    """The fixture BERT's saved tokenizer lists no token_type_ids (as a generic tokenizer.json does): scores
    must still be those of query segment 0 / passage segment 1, as the model was trained."""
    path = family_dirs["bert", 1]
    with_types = by_hand(path, QUERY, TEXTS, token_types=True)[:, 0].tolist()
    without = by_hand(path, QUERY, TEXTS, token_types=False)[:, 0].tolist()
    assert with_types != pytest.approx(without, abs=1e-4)
    assert reranker(path).score(QUERY, TEXTS) == pytest.approx(with_types, abs=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_long_passages_are_cut_at_the_model_limit(family_dirs, family):
    r = reranker(family_dirs[family, 1])
    long_text = "Der Urlaub beträgt jährlich mindestens 24 Werktage. " * 60
    assert r.pair_tokens(QUERY, long_text) > r.max_length
    cut, longer = r.score(QUERY, [long_text, long_text + " Kündigungsfristen verlängern sich."])
    assert cut == pytest.approx(longer, abs=1e-6)  # what lies past the limit is not read
    assert r.score(QUERY, [long_text]) != pytest.approx(r.score("Urlaub", [long_text]), abs=1e-6)  # query kept


def test_uncased_electra_whose_tokenizer_keeps_case_gets_lowercased_input(tmp_path, family_dirs):
    """svalabs/cross-electra-ms-marco-german-uncased has a lower-case vocabulary: a tokenizer that does not
    lower-case would turn every German noun into [UNK]. The reranker lower-cases for it, so it scores exactly
    like the same weights with a lower-casing tokenizer."""
    keeps_case = ce.keep_case_copy(family_dirs["electra", 1], tmp_path / "electra-keeps-case")
    r = reranker(keeps_case)
    assert r._parts().lowercase
    assert "[UNK]" in r._parts().tokenizer.tokenize("Urlaub")  # the trap, unhandled
    assert r.score(QUERY, TEXTS) == pytest.approx(reranker(family_dirs["electra", 1]).score(QUERY, TEXTS), abs=1e-6)
    assert r.pair_tokens(QUERY, TEXTS[0]) == reranker(family_dirs["electra", 1]).pair_tokens(QUERY, TEXTS[0])


def test_two_label_head_uses_the_class_id2label_names_relevant(tmp_path, sample_texts):
    path = ce.build_bert(tmp_path / "bert-named", sample_texts, num_labels=2)
    config = json.loads((path / "config.json").read_text())
    config["id2label"] = {"0": "relevant", "1": "not_relevant"}
    config["label2id"] = {"relevant": 0, "not_relevant": 1}
    (path / "config.json").write_text(json.dumps(config))
    logits = by_hand(path, QUERY, TEXTS, token_types=True)
    assert reranker(path).score(QUERY, TEXTS) == pytest.approx((logits[:, 0] - logits[:, 1]).tolist(), abs=1e-5)


def test_not_a_cross_encoder_names_the_setting(tmp_path, sample_texts, tiny_model_dir):
    plain = ce.build_plain_bert(tmp_path / "plain-bert", sample_texts)
    three = ce.build_bert(tmp_path / "nli", sample_texts, num_labels=3)
    for path, why in [(plain, "not a cross-encoder.*BertModel.*classifier"), (tiny_model_dir, "not a cross-encoder"),
                      (three, "3 labels"), (tmp_path / "fehlt", "no config.json")]:
        with pytest.raises(RerankerUnavailableError, match=f"(?s){why}") as info:
            reranker(path).load()
        assert "rerank_model (GERMAN_RAG_RERANK_MODEL)" in str(info.value) and str(path) in str(info.value)


def test_build_reranker_names_the_setting_for_a_missing_directory(tmp_path):
    with pytest.raises(RerankerUnavailableError, match=r"(?s)rerank_model.*GERMAN_RAG_RERANK_MODEL=.*fehlt"):
        build_reranker(Settings(rerank_model=str(tmp_path / "fehlt")))


def test_build_reranker_offline_hub_id_says_how_to_provide_the_reranker(tmp_path):
    hub_id = "svalabs/cross-electra-ms-marco-german-uncased"
    settings = Settings(rerank_model=hub_id, offline=True, model_cache=str(tmp_path))
    with pytest.raises(RerankerUnavailableError, match=rf"(?s)reranker '{hub_id}' is not in the local cache.*"
                       r"GERMAN_RAG_RERANK_MODEL=/path/to/model"):
        build_reranker(settings)


def test_retriever_reranks_a_real_collection_with_each_family(settings_env, family_dirs, capsys):
    law = FIXTURES / "gesetze/b/burlg/index.md"
    assert main(["ingest", str(law), "--chunk-tokens", "64", "--chunk-overlap", "0", "--json"]) == 0
    capsys.readouterr()
    query = "Wann entsteht der volle Urlaubsanspruch?"
    for family in FAMILIES:
        settings = Settings(rerank_model=str(family_dirs[family, 2]), rerank_candidates=8)
        with open_retriever(settings, rerank=True) as retriever:
            hits = retriever.retrieve(query, top_k=4, rerank=True, mode="bm25")
            plain = retriever.retrieve(query, top_k=8, rerank=False, mode="bm25")
        assert len(hits) == 4 and {h.chunk_id for h in hits} <= {p.chunk_id for p in plain}
        own = reranker(family_dirs[family, 2]).score(query, [p.text for p in plain])
        best = sorted(range(len(plain)), key=lambda i: (-own[i], i))[:4]
        assert [h.chunk_id for h in hits] == [plain[i].chunk_id for i in best], family
        assert [h.scores["rerank"] for h in hits] == pytest.approx([own[i] for i in best], abs=1e-5)
        assert all("bm25" in h.scores for h in hits)
