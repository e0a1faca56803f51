from itertools import pairwise

import pytest

from ingest.chunk import ChunkOptions, TokenChunker
from ingest.schema import Document, IngestError, Section, sha256_text


def make_doc(parts: list[tuple[str, str]], file_type="md") -> Document:
    texts, sections, offset = [], [], 0
    heading: tuple[str, ...] = ()
    for category, text in parts:
        if texts:
            offset += 2
        if category == "Title":
            heading = (text,)
        sections.append(Section(offset, offset + len(text), category, None, heading))
        texts.append(text)
        offset += len(text)
    body = "\n\n".join(texts)
    return Document("mem://doc", body, tuple(sections), sha256_text(body), {"file_type": file_type})


PARA = ("Der Arbeitnehmer hat Anspruch auf Urlaub. Der Urlaub beträgt jährlich mindestens 24 Werktage. "
        "Als Werktage gelten alle Kalendertage, die nicht Sonn- oder gesetzliche Feiertage sind.")


def test_spans_rebuild_text_also_for_repeated_paragraphs(tiny_embedder):
    doc = make_doc([("NarrativeText", PARA)] * 6)
    chunks = TokenChunker(tiny_embedder, ChunkOptions(64, 8)).chunk(doc, "d1")
    assert len(chunks) > 3
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
    starts = [c.start for c in chunks]
    assert len(set(starts)) == len(starts), "repeated paragraphs must keep their own offsets"
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_no_chunk_over_budget_and_no_text_lost(tiny_embedder):
    doc = make_doc([("Title", "§ 3 Dauer des Urlaubs"), ("NarrativeText", PARA * 5)])
    chunker = TokenChunker(tiny_embedder, ChunkOptions(48, 0))
    chunks = chunker.chunk(doc, "d1")
    assert all(tiny_embedder.count_tokens(c.text) <= 48 for c in chunks)
    assert all(c.token_count <= 48 for c in chunks)
    covered = "".join(c.text for c in chunks).replace(" ", "").replace("\n", "")
    assert covered == doc.text.replace(" ", "").replace("\n", "")  # no overlap: every character once


def test_budget_is_capped_by_the_model_limit(tiny_embedder):
    assert TokenChunker(tiny_embedder, ChunkOptions(100_000, 0)).budget == tiny_embedder.max_tokens


def test_headings_and_paragraph_sections_start_new_chunks(tiny_embedder):
    doc = make_doc([
        ("Title", "§ 1 Urlaubsanspruch"), ("NarrativeText", "Jeder Arbeitnehmer hat Anspruch auf Urlaub."),
        ("Title", "§ 2 Geltungsbereich"), ("NarrativeText", "Arbeitnehmer sind Arbeiter und Angestellte."),
    ])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(256, 0)).chunk(doc, "d1")
    assert [c.text.split("\n")[0] for c in chunks] == ["§ 1 Urlaubsanspruch", "§ 2 Geltungsbereich"]
    assert chunks[1].heading_path == ("§ 2 Geltungsbereich",)


def test_consecutive_headings_stay_with_their_content(tiny_embedder):
    doc = make_doc([("Title", "Gesetz"), ("Title", "§ 1 Zweck"), ("NarrativeText", "Der Zweck ist klar.")])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(256, 0)).chunk(doc, "d1")
    assert len(chunks) == 1


def test_overlap_repeats_trailing_sentences(tiny_embedder):
    doc = make_doc([("NarrativeText", " ".join(f"Satz {i} ist kurz." for i in range(40)))])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(64, 24)).chunk(doc, "d1")
    assert any(b.start < a.end for a, b in pairwise(chunks))
    assert all(b.start > a.start for a, b in pairwise(chunks))


def test_over_long_sentence_is_split_within_budget(tiny_embedder):
    sentence = ", ".join(f"das {i}. Bundesverfassungsgerichtsurteil" for i in range(120)) + "."
    doc = make_doc([("NarrativeText", sentence)])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(40, 0)).chunk(doc, "d1")
    assert len(chunks) > 5
    assert all(tiny_embedder.count_tokens(c.text) <= 40 for c in chunks)
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_word_without_spaces_falls_back_to_token_boundaries(tiny_embedder):
    doc = make_doc([("NarrativeText", "Donaudampfschifffahrt" * 80)])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(32, 0)).chunk(doc, "d1")
    assert all(tiny_embedder.count_tokens(c.text) <= 32 for c in chunks)
    assert "".join(c.text for c in chunks) == doc.text


def test_bad_options_are_errors():
    with pytest.raises(IngestError, match="overlap_tokens"):
        ChunkOptions(64, 40)
    with pytest.raises(IngestError, match="too small"):
        ChunkOptions(4, 0)


def test_unnormalised_text_with_soft_hyphen_and_repeats(tiny_embedder):
    text = "Die Die z. B. 0000 0000000000 \xad " + "Datenschutzgrundverordnung" * 3
    doc = make_doc([("NarrativeText", text)])
    chunks = TokenChunker(tiny_embedder, ChunkOptions(32, 4)).chunk(doc, "d1")
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)
    assert all(tiny_embedder.count_tokens(c.text) <= 32 for c in chunks)
    covered = {i for c in chunks for i in range(c.start, c.end)}
    assert all(i in covered for i, ch in enumerate(doc.text) if not ch.isspace())
