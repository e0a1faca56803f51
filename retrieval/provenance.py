"""A Passage's provenance as flat metadata, the one mapping the framework adapters (llama.py, langchain.py) share.

Flat (str, int, float, bool or None values) because that is what both frameworks' vector stores, filters and
prompt formatters expect: nested objects of the document (`meta`, `ocr_pages`) become `meta.KEY` and
`ocr_pages.PAGE`, the names a german-rag filter uses for them too.
"""

from __future__ import annotations

from typing import Any

from ingest.schema import P
from retrieval.schema import Passage

# What a generator is shown beside a passage to cite it; ids, spans, sizes and scores are for programs.
CITATION_KEYS = (P.SOURCE, P.TITLE, P.AUTHOR, P.DATE, P.PAGE, P.HEADING_PATH)
HEADING_SEPARATOR = " > "


def passage_metadata(passage: Passage) -> dict[str, Any]:
    """Source, the document's fields (title, author, date, ... as stored; `meta.KEY` for user metadata), page,
    heading path (joined with " > "), the character span `start`/`end` into the source document's text,
    `chunk_id`, `doc_id`, `chunk_index`, the final `score` and one `score_<stage>` per stage that ranked it."""
    fields = {P.SOURCE: passage.source, **_flat_document(passage.document)}
    return {
        **fields,
        P.PAGE: passage.page,
        P.HEADING_PATH: HEADING_SEPARATOR.join(passage.heading_path),
        P.START: passage.start,
        P.END: passage.end,
        P.CHUNK_ID: passage.chunk_id,
        P.DOC_ID: passage.doc_id,
        P.CHUNK_INDEX: passage.chunk_index,
        "score": passage.score,
        **{f"score_{stage}": value for stage, value in passage.scores.items()},
    }


def _flat_document(document: dict[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{inner}": item for inner, item in value.items()})
        else:
            flat[key] = value
    return flat
