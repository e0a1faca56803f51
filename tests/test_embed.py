import time

import numpy as np
import pytest

from ingest.embed import EmbedderOptions, HFEmbedder, token_budget_batches
from ingest.model_files import read_model_spec
from ingest.schema import ModelUnavailableError, TokenLimitError

GERMAN = [
    "Der Urlaub beträgt jährlich mindestens 24 Werktage.",
    "Kurz.",
    "Die werktägliche Arbeitszeit der Arbeitnehmer darf acht Stunden nicht überschreiten; sie kann auf bis "
    "zu zehn Stunden verlängert werden, wenn innerhalb von sechs Kalendermonaten im Durchschnitt acht "
    "Stunden werktäglich nicht überschritten werden.",
    "Das Bundesverfassungsgericht entscheidet über Verfassungsbeschwerden.",
    "Wie viele Urlaubstage stehen mir zu?",
]


def cosine(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_minilm_equals_sentence_transformers_encode(minilm_dir):
    st = pytest.importorskip("sentence_transformers")
    ours = HFEmbedder(EmbedderOptions(model=str(minilm_dir), max_batch_tokens=256))
    reference = st.SentenceTransformer(str(minilm_dir), device="cpu").encode(GERMAN * 3, batch_size=4)
    mine = ours.embed_documents(GERMAN * 3)
    assert ours.dimension == 384 and ours.max_tokens == 256
    for a, b in zip(mine, reference, strict=True):
        assert 1 - cosine(a, b) < 1e-5


def test_result_does_not_depend_on_batch(tiny_embedder):
    together = tiny_embedder.embed_documents(GERMAN)
    for text, vec in zip(GERMAN, together, strict=True):
        alone = tiny_embedder.embed_documents([text])[0]
        assert 1 - cosine(alone, vec) < 1e-5


def test_dimension_and_limit_come_from_the_model(tiny_embedder):
    assert tiny_embedder.dimension == 32
    assert tiny_embedder.max_tokens == 512
    assert len(tiny_embedder.embed_query("Urlaub")) == 32


def test_spec_read_from_model_files(minilm_dir, tiny_model_dir):
    spec = read_model_spec(minilm_dir)
    assert (spec.pooling, spec.normalize, spec.max_seq_length) == ("mean", True, 256)
    assert read_model_spec(tiny_model_dir).normalize is False


def test_token_limit_is_an_error_unless_truncation_is_asked(tiny_embedder):
    long_text = "Urlaub " * 600
    with pytest.raises(TokenLimitError, match="over the model's limit of 512"):
        tiny_embedder.embed_query(long_text)
    with pytest.raises(TokenLimitError, match="text 1 has"):
        tiny_embedder.embed_documents(["kurz", long_text])
    assert len(tiny_embedder.embed_query(long_text, truncate=True)) == 32


def test_special_tokens_are_counted(tiny_embedder):
    assert tiny_embedder.count_tokens("") == 2  # [CLS] [SEP]


def test_token_budget_batches_cover_every_text_once():
    lengths = [5, 100, 7, 64, 64, 3, 200]
    batches = token_budget_batches(lengths, max_tokens=210, max_size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert max(lengths[i] for i in b) * len(b) <= 210 or len(b) == 1
        assert len(b) <= 3


def test_missing_hub_model_fails_fast_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    emb = HFEmbedder(EmbedderOptions(model="aari1995/German_Semantic_STS_V2", cache_dir=str(tmp_path)))
    started = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match="GERMAN_RAG_EMBED_MODEL"):
        emb.load()
    assert time.perf_counter() - started < 10


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does-not-exist"):
        HFEmbedder(EmbedderOptions(model=str(tmp_path / "does-not-exist"))).load()
