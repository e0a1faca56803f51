"""The chunker's token ids go to the model: the ingest tokenizes every chunk once, and stores exactly what it
stored when the model call tokenized the chunk texts again."""

from __future__ import annotations

from pathlib import Path

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.embed import EmbedderOptions, HFEmbedder
from ingest.limits import Limits
from ingest.parse import parse_file
from ingest.schema import Chunk, Document, P
from ingest.store.base import StoreOptions
from ingest.store.edge import EdgeStore
from pipelines.indexing.run import IngestRunner
from tests.test_ingest_pipeline import PARAGRAPH


class IdsSeen(HFEmbedder):
    """The real embedder, noting for each model call whether it was handed token ids."""

    def __init__(self, options: EmbedderOptions) -> None:
        super().__init__(options)
        self.with_ids: list[bool] = []

    def embed_documents(self, texts, token_ids=None):
        self.with_ids.append(token_ids is not None)
        return super().embed_documents(texts, token_ids)


class TextOnlyChunker:
    """The same chunker seen through the bare Chunker protocol (no `chunk_ids`): the path before the handover,
    where `embed_documents` tokenizes the chunk texts itself."""

    def __init__(self, inner: TokenChunker) -> None:
        self.inner = inner

    def fingerprint(self) -> str:
        return self.inner.fingerprint()

    def chunk(self, doc: Document, doc_id: str) -> list[Chunk]:
        return self.inner.chunk(doc, doc_id)


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "gesetz.txt").write_text("".join(PARAGRAPH.format(n=n) for n in range(1, 9)), encoding="utf-8")
    (folder / "notiz.md").write_text("# Betriebsrat\n\nDer Betriebsrat tagt am Montag. Die Sitzung ist nicht "
                                     "öffentlich; Gäste melden sich vorher an.\n", encoding="utf-8")
    return folder


def ingest(model_dir: Path, corpus: Path, store_path: Path, handover: bool) -> tuple[dict, IdsSeen]:
    emb = IdsSeen(EmbedderOptions(model=str(model_dir)))
    chunker = TokenChunker(emb, ChunkOptions(max_tokens=48, overlap_tokens=8))
    store = EdgeStore(StoreOptions(collection="ids", path=str(store_path)))
    runner = IngestRunner(emb, chunker if handover else TextOnlyChunker(chunker), store, "tiny", progress=False,
                          limits=Limits(parse_timeout_s=0))
    report = runner.run([corpus])
    assert report.count("ingested") == 2
    every_field: list = True  # type: ignore[assignment]  # the engine's with_payload=True: every payload field
    points = {pid: (payload, vec) for pid, payload, vec in store.scan(every_field, vectors=True)}
    store.close()
    return points, emb


def test_handed_over_ids_store_the_same_points_and_vectors(tiny_model_dir, tmp_path):
    corpus = write_corpus(tmp_path / "docs")
    handed, emb = ingest(tiny_model_dir, corpus, tmp_path / "a", handover=True)
    retokenized, plain = ingest(tiny_model_dir, corpus, tmp_path / "b", handover=False)
    assert emb.with_ids and all(emb.with_ids)  # the model got the chunker's ids
    assert plain.with_ids and not any(plain.with_ids)
    assert len(handed) > 4 and handed.keys() == retokenized.keys()
    for pid, (payload, vec) in handed.items():
        other = retokenized[pid][0]
        assert {**payload, P.INGESTED_AT: None} == {**other, P.INGESTED_AT: None}  # the write time differs
        assert vec == retokenized[pid][1]  # bit-identical


def test_chunk_ids_are_the_embedders_document_ids(tiny_embedder, fixtures):
    """Ids and token counts as `embed_documents` and `count_tokens` would make them, also for chunks that the
    packer had to split again (a tight budget) and with overlap."""
    path = next((fixtures / "gesetze").rglob("*.md"))
    doc = parse_file(path, path.name)
    chunker = TokenChunker(tiny_embedder, ChunkOptions(max_tokens=40, overlap_tokens=8))
    chunks, ids = chunker.chunk_ids(doc, "d")
    assert ids is not None and len(ids) == len(chunks) > 3
    assert ids == tiny_embedder.document_ids([c.text for c in chunks])
    assert [c.token_count for c in chunks] == [tiny_embedder.count_tokens(c.text) for c in chunks]
    assert chunker.chunk(doc, "d") == chunks
