"""Property-based tests (hypothesis): the chunker's contract on any text, the analyzer on any Unicode."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.normalize import normalize_text
from ingest.schema import Document, Section, sha256_text
from ingest.sparse import GermanAnalyzer, SparseEncoder

WORDS = st.sampled_from(["Die", "Kündigung", "z. B.", "§ 5 Abs. 2", "Größe", "ß", "E-Mail", "3.", "Oktober", "—",
                         "Bundesverfassungsgericht", "ﬁ", "\u00ad", "\u200b", "…", "?", "!", ".", "  ", "\n", "\t",
                         "Datenschutzgrundverordnung" * 3, "x" * 80, "😀", "日本語", "١٢٣"])
PARAGRAPH = st.lists(st.one_of(WORDS, st.text(min_size=1, max_size=30)), min_size=1, max_size=60).map(" ".join)
# Found by the property below: langchain's splitter drops whitespace runs, so its pieces stopped
# tiling an over-long sentence ("internal: splitter pieces do not tile the sentence"); fixed in e8127e3.
BUG_TEXT = "Datenschutzgrundverordnung" * 3 + "    " + "Datenschutzgrundverordnung" * 3
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def document(paragraphs: list[tuple[str, bool]]) -> Document:
    """A Document as parse.py makes one: each paragraph normalised (as every parsed element is)."""
    parts, sections, offset = [], [], 0
    for raw, heading in paragraphs:
        text = normalize_text(raw)
        if not text:
            continue
        if parts:
            offset += 2
        sections.append(Section(offset, offset + len(text), "Title" if heading else "NarrativeText", 1,
                                (text[:20],) if heading else ()))
        parts.append(text)
        offset += len(text)
    body = "\n\n".join(parts)
    return Document("prop.txt", body, tuple(sections), sha256_text(body))


@pytest.fixture(scope="module")
def chunkers(tiny_embedder):
    return [TokenChunker(tiny_embedder, ChunkOptions(32, 4)), TokenChunker(tiny_embedder, ChunkOptions(128, 16))]


@SETTINGS
@given(paras=st.lists(st.tuples(PARAGRAPH.filter(lambda t: t.strip()), st.booleans()), min_size=1, max_size=6))
def test_chunks_have_valid_spans_lose_no_text_and_fit_the_token_limit(chunkers, paras):
    doc = document(paras)
    note(f"text={doc.text!r}")
    if not doc.text.strip():
        return
    for chunker in chunkers:
        chunks = chunker.chunk(doc, "doc")
        covered = bytearray(len(doc.text))
        for i, c in enumerate(chunks):
            assert 0 <= c.start < c.end <= len(doc.text) and c.index == i
            assert doc.text[c.start:c.end] == c.text
            assert chunker.tokenizer.count_tokens(c.text) <= chunker.budget
            covered[c.start:c.end] = b"\1" * (c.end - c.start)
        lost = [ch for ch, hit in zip(doc.text, covered, strict=True) if not hit and not ch.isspace()]
        assert not lost, f"text not in any chunk: {''.join(lost)[:80]!r}"


def test_whitespace_run_inside_an_over_long_sentence(chunkers):
    doc = document([(BUG_TEXT, False)])
    chunks = chunkers[0].chunk(doc, "doc")
    assert all(doc.text[c.start:c.end] == c.text for c in chunks)


@SETTINGS
@given(text=st.text(max_size=400))
def test_the_analyzer_never_crashes_on_any_unicode(text):
    encoder = SparseEncoder(GermanAnalyzer())
    terms = encoder.analyzer.analyze(text)
    assert all(isinstance(t, str) and t for t in terms)
    indices, values = encoder.encode_documents([text])[0]
    assert len(indices) == len(values) == len(set(indices))
    q_indices, q_values = encoder.encode_query(text)
    assert len(q_indices) == len(q_values)
