"""Context packing (retrieval/context.py): never over budget, cuts at sentence ends with body text, exact spans,
strategies, the prompt template, budget and tokenizer errors. Passages are cut from a real law text (the
fixtures' BUrlG) at whitespace, as the chunker cuts: spans exact, neighbours separated by whitespace."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from retrieval.context import BudgetError, ContextPacker, blocks_of, stage_options
from retrieval.focus import LexicalScorer
from retrieval.prompt import PromptError, PromptTemplate
from retrieval.schema import Passage, QueryError
from retrieval.tokens import EstimateCounter, TokenizerCounter, TokenizerError, token_counter

LAW = (Path(__file__).parent / "fixtures" / "gesetze" / "b" / "burlg" / "index.md").read_text(encoding="utf-8")
DOC = LAW.split("\n---\n", 1)[-1].strip()[:6000]
WORD_GAPS = [m.start() for m in re.finditer(r"\s+", DOC)]


def chunk(doc_id: str, index: int, start: int, end: int, score: float, text: str = DOC, **kw) -> Passage:
    return Passage(f"{doc_id}-{index}", doc_id, text[start:end], f"{doc_id}.md", None, kw.pop("heading", ()),
                   start, end, index, score, {"fused": score}, kw.pop("document", {}))


def chunks_of(bounds: list[int], doc_id: str = "burlg") -> list[Passage]:
    """Chunks between whitespace positions `bounds` (sorted): chunk i ends before the whitespace, i+1 starts
    after it, so neighbours are separated by whitespace only (as the chunker leaves them)."""
    out, start = [], 0
    for i, b in enumerate([*bounds, len(DOC)]):
        end = b
        if end > start:
            out.append(chunk(doc_id, i, start, end, 0.0))
        start = end
        while start < len(DOC) and DOC[start].isspace():
            start += 1
    return out


def same_text(a: str, b: str) -> bool:
    return a.split() == b.split()


def check_packed(ctx, budget: int, counter) -> None:
    assert ctx.tokens <= budget and ctx.tokens == (counter.count(ctx.text) if ctx.text else 0)
    bodies = re.split(r"(?m)^\[\d+\] [^\n]*\n", ctx.text)[1:]
    assert len(bodies) == len(ctx.citations)
    for c, body in zip(ctx.citations, bodies, strict=True):
        assert same_text(DOC[c.start:c.end], body)  # the span is exact, also for a cut block
        assert c.start == 0 or DOC[c.start - 1].isspace(), "window starts inside a word"
        if c.cut and ctx.strategy == "focus":  # a window ends at a sentence end or where its last chunk ends
            assert c.end == len(DOC) or DOC[c.end].isspace(), "cut inside a word"
        elif c.cut:
            assert c.end == len(DOC) or DOC[c.end].isspace(), "cut inside a word"
            assert DOC[c.end - 1] in ".!?…:;)\"'»«“”" or DOC[c.end:c.end + 2] == "\n\n", DOC[c.end - 30:c.end + 5]


@pytest.fixture(scope="module")
def tiny_counter(tiny_model_dir) -> TokenizerCounter:
    return TokenizerCounter(tiny_model_dir)


@settings(max_examples=90, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.sampled_from(WORD_GAPS), min_size=1, max_size=12, unique=True),
       picks=st.lists(st.integers(0, 12), min_size=1, max_size=8), budget=st.integers(1, 1500),
       strategy=st.sampled_from(["topk", "merge", "focus"]), tokenizer=st.booleans())
def test_never_over_budget_and_spans_exact(cuts, picks, budget, strategy, tokenizer, tiny_counter):
    counter = tiny_counter if tokenizer else EstimateCounter()
    chunks = chunks_of(sorted(cuts))
    passages = list({c.chunk_id: c for c in (chunks[i % len(chunks)] for i in picks)}.values())
    passages = [Passage(**{**p.__dict__, "score": 1.0 - r / 10}) for r, p in enumerate(passages)]
    note(f"{[(p.chunk_index, p.start, p.end) for p in passages]}")
    packer = ContextPacker(counter, strategy)
    try:
        ctx = packer.pack("Wie lange dauert der Urlaub?", passages, budget)
    except BudgetError:
        smallest = min(counter.count(f"[1] {p.source}") for p in passages)
        assert budget <= smallest
        return
    check_packed(ctx, budget, counter)


def test_merge_keeps_document_order_inside_and_rank_between_blocks():
    chunks = chunks_of(WORD_GAPS[40:400:40])
    other = chunk("kschg", 0, 0, 200, 0.8)
    passages = [Passage(**{**chunks[3].__dict__, "score": 0.9}), other, Passage(**{**chunks[2].__dict__,
                "score": 0.7}), Passage(**{**chunks[4].__dict__, "score": 0.5})]
    blocks = blocks_of(passages)
    assert [b.passages[0].doc_id for b in blocks] == ["burlg", "kschg"]
    assert (blocks[0].start, blocks[0].end) == (chunks[2].start, chunks[4].end)
    assert blocks[0].end - blocks[0].start == len(blocks[0].text) and same_text(blocks[0].text,
                                                                                DOC[chunks[2].start:chunks[4].end])
    assert len(blocks_of(passages, merge=False)) == 4
    ctx = ContextPacker(EstimateCounter(), "merge").pack("Urlaub", passages, 5000)
    assert [c.number for c in ctx.citations] == [1, 2] and ctx.citations[0].score == 0.9
    assert ctx.citations[0].chunk_ids == tuple(c.chunk_id for c in chunks[2:5])


def test_a_cut_keeps_body_text_not_only_the_heading():
    heading = "§ 3 Dauer des Urlaubs"
    text = f"# {heading}\n\nDer Urlaub beträgt jährlich mindestens 24 Werktage. Als Werktage gelten alle " \
           "Kalendertage, die nicht Sonn- oder gesetzliche Feiertage sind."
    p = chunk("burlg", 0, 0, len(text), 1.0, text, heading=(heading,))
    counter = EstimateCounter()
    header = "[1] burlg.md · § 3 Dauer des Urlaubs\n"
    only_heading = counter.count(header + f"# {heading}")
    first_sentence = counter.count(header + text[: text.index("Werktage.") + 9])
    packer = ContextPacker(counter, "merge")
    assert packer.pack("Urlaub", [p], only_heading + 2).citations == ()  # a heading alone is no source
    ctx = packer.pack("Urlaub", [p], first_sentence)
    (c,) = ctx.citations
    assert c.cut and ctx.text.endswith("24 Werktage.") and text[c.start:c.end].endswith("24 Werktage.")


def test_budget_below_the_smallest_header_is_a_budget_error():
    p = chunk("burlg", 0, 0, 300, 1.0, document={"title": "Bundesurlaubsgesetz"})
    with pytest.raises(BudgetError, match="budget: 5 tokens cannot hold a source header"):
        ContextPacker(EstimateCounter()).pack("Urlaub", [p], 5)
    with pytest.raises(BudgetError, match="budget: 0"):
        ContextPacker(EstimateCounter()).pack("Urlaub", [p], 0)
    assert issubclass(BudgetError, QueryError)
    assert ContextPacker(EstimateCounter()).pack("Urlaub", [], 5).citations == ()  # nothing found: no error


def test_prompt_counts_towards_the_budget(tmp_path):
    template = PromptTemplate.load()
    assert "Das steht nicht in den Unterlagen." in template.text and "[1]" in template.text
    passages = chunks_of(WORD_GAPS[50:600:50])
    counter = EstimateCounter()
    plain = ContextPacker(counter, "topk").pack("Wie lange?", passages, 400)
    ctx = ContextPacker(counter, "topk").pack("Wie lange?", passages, 400, template)
    assert ctx.prompt is not None and ctx.text in ctx.prompt and ctx.prompt.rstrip().endswith("Antwort:")
    assert "Frage: Wie lange?" in ctx.prompt and ctx.tokens == counter.count(ctx.prompt) <= 400
    assert ctx.context_tokens == counter.count(ctx.text) < plain.context_tokens  # the prompt took its share
    with pytest.raises(BudgetError, match="the prompt with the shortest source header"):
        ContextPacker(counter).pack("Wie lange?", passages, counter.count(template.fill("", "Wie lange?")) + 3,
                                    template)
    braces = PromptTemplate("Q: {question}\n{context}", "x").fill("a {question} b", "{context}?")
    assert braces == "Q: {context}?\na {question} b"


def test_prompt_file_errors_name_the_setting(tmp_path):
    bad = tmp_path / "p.txt"
    bad.write_text("Nur {context}", encoding="utf-8")
    with pytest.raises(PromptError, match=r"context_prompt: .*p.txt: the template lacks the placeholder\(s\) "
                       r"\{question\}"):
        PromptTemplate.load(bad)
    with pytest.raises(PromptError, match=r"context_prompt: .*missing\.txt: cannot read"):
        PromptTemplate.load(tmp_path / "missing.txt")


def test_tokenizer_errors_name_the_setting(tmp_path, tiny_model_dir):
    with pytest.raises(TokenizerError, match=r"context_tokenizer: .*nowhere: no tokenizer\.json there"):
        token_counter(str(tmp_path / "nowhere"))
    (tmp_path / "tokenizer.json").write_text("{kaputt", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"context_tokenizer: .*tokenizer\.json: not a readable"):
        token_counter(str(tmp_path))
    counter = token_counter(str(tiny_model_dir / "tokenizer.json"))
    assert counter.count("Der Urlaub") < 10 and isinstance(token_counter(None), EstimateCounter)


def test_minilm_tokenizer_counts_without_its_saved_padding(minilm_dir):
    """MiniLM's tokenizer.json pads to 128 and truncates at 128: counted as saved, 'Urlaub' took 128 tokens."""
    counter = TokenizerCounter(minilm_dir)
    assert counter.count("Urlaub") < 5 and counter.count(DOC) > 1000


def test_strategies_ask_the_retriever_for_their_stages():
    assert stage_options("topk") == stage_options("merge") == {"expand": 0, "mmr": None}
    assert stage_options("expand") == {"expand": 1, "mmr": None} and stage_options("expand", 2)["expand"] == 2
    assert stage_options("mmr") == {"expand": 0, "mmr": 0.7}
    with pytest.raises(QueryError, match="strategy: 'best'"):
        ContextPacker(EstimateCounter(), "best")


# `focus` (retrieval/focus.py): seed each block with its best sentence, grow windows, spans exact.
ARBEIT = ("Die Firma wurde 1950 in Köln gegründet. Sie stellt Maschinen für Bäckereien her. Der Sitz liegt am Rhein. "
          "Jeder Beschäftigte hat Anspruch auf 30 Tage Erholungsurlaub im Kalenderjahr. Die Kantine öffnet um zwölf.")
REISE = ("Der Zug fährt stündlich nach Bonn. Fahrkarten gibt es am Automaten. Im Sommer fahren Sonderzüge. "
         "Wer Erholungsurlaub plant, bucht früh. Die Preise steigen im Juli.")
WETTER = "Im Herbst regnet es oft. Der Wind kommt meist aus Westen. Urlaub am Meer ist im Herbst günstig."
QUERY = "Wie viele Tage Erholungsurlaub hat ein Beschäftigter?"


def doc_passages() -> list[Passage]:
    return [chunk("arbeit", 0, 0, len(ARBEIT), 0.9, ARBEIT), chunk("reise", 0, 0, len(REISE), 0.8, REISE),
            chunk("wetter", 0, 0, len(WETTER), 0.7, WETTER)]


def bodies(ctx) -> list[str]:
    return [b.strip() for b in re.split(r"(?m)^\[\d+\] [^\n]*\n", ctx.text)[1:]]


def test_lexical_scorer_rates_sentences_by_the_german_analyzer():
    scores = LexicalScorer()(QUERY, ["Jeder Beschäftigte hat Anspruch auf 30 Tage Erholungsurlaubs.",
                                     "Die Kantine öffnet um zwölf.", "Erholungsurlaub im Sommer."])
    assert scores[0] > scores[2] > 0 and scores[1] == 0  # inflection and compounds match, stop words do not


def test_focus_with_an_ample_budget_equals_merge():
    passages = chunks_of(WORD_GAPS[40:400:40])[1:6] + doc_passages()
    merged = ContextPacker(EstimateCounter(), "merge").pack(QUERY, passages, 20_000)
    focused = ContextPacker(EstimateCounter(), "focus").pack(QUERY, passages, 20_000)
    assert focused.text == merged.text and focused.citations == merged.citations
    assert not any(c.cut for c in focused.citations)


def test_focus_seeds_blocks_with_their_best_sentence_before_growing(monkeypatch):
    import retrieval.focus as focus

    counter, passages = EstimateCounter(), doc_passages()
    seeds = ["Jeder Beschäftigte hat Anspruch auf 30 Tage Erholungsurlaub im Kalenderjahr.",
             "Wer Erholungsurlaub plant, bucht früh.", "Urlaub am Meer ist im Herbst günstig."]
    pairs = enumerate(zip(passages, seeds, strict=True), 1)
    tight = counter.count("\n\n".join(f"[{n}] {p.source}\n{s}" for n, (p, s) in pairs))
    monkeypatch.setattr(focus, "SEEDS", 3)
    ctx = ContextPacker(counter, "focus").pack(QUERY, passages, tight)
    assert bodies(ctx) == seeds and ctx.tokens <= tight  # three sources, one sentence each
    for c, p, s in zip(ctx.citations, passages, seeds, strict=True):
        assert c.cut and p.text[c.start:c.end] == s and c.chunk_ids == (p.chunk_id,)
    monkeypatch.setattr(focus, "SEEDS", 1)  # one seed: the best block grows first, around its best sentence
    (first, *_) = bodies(ContextPacker(counter, "focus").pack(QUERY, passages, tight))
    assert seeds[0] in first and first in ARBEIT and len(first) > len(seeds[0])
    merged = ContextPacker(counter, "merge").pack(QUERY, passages, tight)
    assert seeds[0] not in merged.text  # a prefix of the first block cannot reach its fourth sentence


def test_focus_grows_the_best_ranked_window_first_towards_its_more_relevant_neighbour():
    counter, passages = EstimateCounter(), doc_passages()
    budget = counter.count(ARBEIT) + 60  # block 1 almost whole plus the other seeds
    ctx = ContextPacker(counter, "focus").pack(QUERY, passages, budget)
    first, *rest = bodies(ctx)
    assert "30 Tage Erholungsurlaub" in first and rest and all(len(first) > len(r) for r in rest)
    assert ctx.tokens <= budget and ctx.citations[0].source == "arbeit.md"
    assert ARBEIT.index(first) == ctx.citations[0].start and first in ARBEIT  # one contiguous window


def test_focus_growth_policies_and_headings_only_blocks(monkeypatch):
    import retrieval.focus as focus

    counter, passages = EstimateCounter(), doc_passages()
    heading = chunk("gesetz", 0, 0, 25, 0.95, "# § 3 Dauer des Urlaubs\n\n", heading=("§ 3 Dauer des Urlaubs",))
    blocks = blocks_of([heading, *passages])
    room = counter.count(ARBEIT)  # the three seeds and a little growth

    def fits(selections) -> bool:
        return sum(counter.count(blocks[i].text[s:e]) + 8 for i, s, e in selections) <= room

    monkeypatch.setattr(focus, "SEEDS", 1)
    (single, *_) = focus.focus_windows(QUERY, blocks, LexicalScorer(), fits)  # one seed, rank growth
    assert single[0] == 1 and ARBEIT[single[1]:single[2]].startswith("Sie stellt")
    monkeypatch.setattr(focus, "SEEDS", 3)
    by_rank = focus.focus_windows(QUERY, blocks, LexicalScorer(), fits, grow="rank")
    by_relevance = focus.focus_windows(QUERY, blocks, LexicalScorer(), fits, grow="relevance")
    for selections in (by_rank, by_relevance):
        assert [i for i, _, _ in selections] == [1, 2, 3] and fits(selections)  # the heading block is no source
        for i, s, e in selections:
            assert s == 0 or blocks[i].text[s - 1] == " "
            assert blocks[i].text[e - 1] == "." and (e == len(blocks[i].text) or blocks[i].text[e] == " ")
    assert by_rank[0][2] - by_rank[0][1] >= by_relevance[0][2] - by_relevance[0][1]  # rank: block 1 grows first
