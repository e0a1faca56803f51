"""The ingest pipeline's economies: unchanged files cost no model, changed files re-embed only new text,
small files share model batches, and none of it changes what is stored."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.embed import EmbedderOptions, HFEmbedder
from ingest.limits import Limits
from ingest.schema import DEFAULT_ACCESS
from ingest.store.base import StoreOptions, StoreUnavailableError
from ingest.store.qdrant import QdrantStore
from pipelines.indexing.run import IngestRunner

PARAGRAPH = ("§ {n} Geltungsbereich. Dieses Gesetz gilt für alle Arbeitnehmerinnen und Arbeitnehmer, "
             "die in Betrieben der Bundesrepublik Deutschland beschäftigt sind, soweit nichts anderes "
             "bestimmt ist. Die Arbeitszeit darf acht Stunden werktäglich nicht überschreiten.\n\n")


class CountingEmbedder(HFEmbedder):
    """The real embedder, counting what reaches the model."""

    def __init__(self, options: EmbedderOptions) -> None:
        super().__init__(options)
        self.calls: list[int] = []

    def embed_documents(self, texts, token_ids=None):
        self.calls.append(len(texts))
        return super().embed_documents(texts, token_ids)


def make_runner(model_dir: Path, store_path: Path) -> tuple[IngestRunner, CountingEmbedder]:
    emb = CountingEmbedder(EmbedderOptions(model=str(model_dir)))
    store = QdrantStore(StoreOptions(collection="p", path=str(store_path)))
    chunker = TokenChunker(emb, ChunkOptions(max_tokens=48, overlap_tokens=0))
    runner = IngestRunner(emb, chunker, store, "tiny", progress=False, limits=Limits(parse_timeout_s=0))
    return runner, emb


def vectors_by_text(store: QdrantStore) -> dict[str, list[float]]:
    """Unit vectors by chunk text (a reopened local store returns them normalised for cosine)."""
    out = {}
    for _, payload, vec in store.scan(["text"], vectors=True):
        norm = sum(x * x for x in vec) ** 0.5
        out[payload["text"]] = [x / norm for x in vec]
    return out


@pytest.fixture
def corpus(tmp_path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "gesetz.txt").write_text("".join(PARAGRAPH.format(n=n) for n in range(1, 9)), encoding="utf-8")
    for i in range(6):
        (docs / f"notiz_{i}.txt").write_text(f"Notiz {i}: Der Betriebsrat tagt am Montag um {i + 8} Uhr.",
                                            encoding="utf-8")
    return docs


def test_unchanged_reingest_reads_no_weights_and_parses_nothing(tiny_model_dir, corpus, tmp_path):
    runner, _ = make_runner(tiny_model_dir, tmp_path / "q")
    first = runner.run([corpus])
    runner.store.close()
    again, emb = make_runner(tiny_model_dir, tmp_path / "q")
    report = again.run([corpus])
    again.store.close()
    assert first.count("ingested") == 7 and report.count("unchanged") == 7
    assert emb._backend is None and emb.calls == []  # the weights were never read
    assert report.stage_seconds["embed"] == 0 and report.points_written == 0


def test_changed_file_reembeds_only_its_new_chunks(tiny_model_dir, corpus, tmp_path):
    runner, _ = make_runner(tiny_model_dir, tmp_path / "q")
    first = runner.run([corpus])
    before = vectors_by_text(runner.store)
    runner.store.close()
    law = corpus / "gesetz.txt"
    law.write_text(law.read_text(encoding="utf-8") + "Nachtrag: Diese Fassung wurde geändert.\n", encoding="utf-8")
    again, emb = make_runner(tiny_model_dir, tmp_path / "q")
    report = again.run([corpus])
    after = vectors_by_text(again.store)
    count = again.store.count()
    again.store.close()
    (changed,) = [f for f in report.files if f.status == "ingested"]
    assert changed.chunks > 2 and changed.chunks_reused == changed.chunks - 1  # only the last chunk is new
    assert sum(emb.calls) == 1
    others = sum(f.chunks for f in first.files if not f.source.endswith("gesetz.txt"))
    assert count == others + changed.chunks  # the old version replaced, nothing doubled
    for text, vec in after.items():
        if text in before:
            assert vec == pytest.approx(before[text], abs=1e-6), text  # reused, not recomputed


def test_small_files_share_model_batches_and_vectors_do_not_depend_on_it(tiny_model_dir, corpus, tmp_path):
    runner, emb = make_runner(tiny_model_dir, tmp_path / "q")
    report = runner.run([corpus])
    batched = vectors_by_text(runner.store)
    runner.store.close()
    assert len(emb.calls) < report.count("ingested")  # fewer model calls than files
    single, emb1 = make_runner(tiny_model_dir, tmp_path / "q1")
    single.batch_tokens = 1  # every file embedded on its own
    single.run([corpus])
    alone = vectors_by_text(single.store)
    single.store.close()
    assert len(emb1.calls) == report.count("ingested")
    assert batched.keys() == alone.keys()
    for text in batched:
        assert batched[text] == pytest.approx(alone[text], abs=1e-5)


def test_service_slices_keep_input_order_and_batch_similar_lengths(tiny_embedder):
    import threading

    from pipelines.service.core import EMBED_SLICE, SlicedEmbedder

    texts = [("Kurz." if i % 2 else "Ein deutlich längerer Satz über die Arbeitszeit im Betrieb. " * 3) + str(i)
             for i in range(2 * EMBED_SLICE + 3)]
    seen: list[list[str]] = []

    class Spy:
        def embed_documents(self, batch, token_ids=None):
            seen.append(list(batch))
            return tiny_embedder.embed_documents(batch)

    sliced = SlicedEmbedder(Spy(), threading.Lock()).embed_documents(texts)
    for got, want in zip(sliced, tiny_embedder.embed_documents(texts), strict=True):  # input order kept
        assert got == pytest.approx(want, abs=1e-5)
    assert all(len(b) <= EMBED_SLICE for b in seen)
    for a, b in itertools.pairwise(seen):  # shortest slices first: no slice mixes lengths more than needed
        assert max(map(len, a)) <= min(map(len, b))


def test_a_batch_of_only_failed_files_never_calls_the_model(tiny_model_dir, tmp_path, caplog):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "kaputt.pdf").write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 8)
    runner, emb = make_runner(tiny_model_dir, tmp_path / "q")
    with caplog.at_level("WARNING"):
        report = runner.run([docs])
    runner.store.close()
    assert report.count("failed") == 1 and "kaputt.pdf" in report.files[0].error
    assert emb.calls == [] and not [r for r in caplog.records if "embedding failed" in r.getMessage()]


def test_vectors_are_reused_only_from_the_same_source(tiny_model_dir, corpus, tmp_path):
    runner, _ = make_runner(tiny_model_dir, tmp_path / "q")
    runner.run([corpus])
    runner.store.close()
    law = corpus / "gesetz.txt"
    text = law.read_text(encoding="utf-8")
    law.write_text(text + "Nachtrag: geändert.\n", encoding="utf-8")  # changed: its old chunks are reusable
    (corpus / "kopie.txt").write_text(text, encoding="utf-8")  # a new source with the very same chunk texts
    again, _ = make_runner(tiny_model_dir, tmp_path / "q")
    report = again.run([corpus])
    again.store.close()
    files = {Path(f.source).name: f for f in report.files}
    assert files["gesetz.txt"].chunks_reused == files["gesetz.txt"].chunks - 1
    assert files["kopie.txt"].status == "ingested" and files["kopie.txt"].chunks_reused == 0


def test_an_engine_error_on_one_file_fails_that_file_only(tiny_model_dir, corpus, tmp_path):
    class Flaky(QdrantStore):
        def upsert_chunks(self, chunks, dense, sparse=None, doc_hash="", access=DEFAULT_ACCESS, fields=None):
            if chunks[0].source.endswith("notiz_2.txt"):
                raise RuntimeError("engine refused the write")  # not an IngestError: a plain engine error
            return super().upsert_chunks(chunks, dense, sparse, doc_hash, access, fields)

    runner, _ = make_runner(tiny_model_dir, tmp_path / "q")
    runner.store = Flaky(StoreOptions(collection="p", path=str(tmp_path / "q2")))
    report = runner.run([corpus])
    runner.store.close()
    files = {Path(f.source).name: f for f in report.files}
    assert report.balanced and len(files) == 7
    assert files["notiz_2.txt"].status == "failed" and "engine refused the write" in files["notiz_2.txt"].error
    assert all(f.status == "ingested" for name, f in files.items() if name != "notiz_2.txt")


def test_bulk_end_that_fails_does_not_hide_the_report(tiny_model_dir, corpus, tmp_path):
    class Unreachable(QdrantStore):
        def end_bulk(self):
            raise StoreUnavailableError("Qdrant at x is unavailable")

    runner, _ = make_runner(tiny_model_dir, tmp_path / "q")
    runner.store = Unreachable(StoreOptions(collection="p", path=str(tmp_path / "q3")))
    runner.bulk = True
    report = runner.run([corpus])
    runner.store.close()
    assert report.balanced and report.count("ingested") == 7
