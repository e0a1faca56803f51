"""An OpenAI-compatible `POST /v1/embeddings` over the service's own model, so other tools embed with it.

Decided here and documented in the README:
- `model` must name the served model: the `embed_model` setting as `german-rag config` shows it, the identity
  the collection records (a directory as its absolute path), or the last part of either (`all-MiniLM-L6-v2`,
  `German_Semantic_STS_V2`); any other name is a 404 `model_not_found`, as OpenAI answers it.
- the vectors are passage (document) embeddings, exactly what ingest stores; the extension
  `"input_type": "query"` returns query embeddings (what a search embeds; the same for symmetric models).
- every input is counted with the model's tokenizer (special tokens and the passage prompt included): `usage`
  sums the counts; an input over the model's limit is a 400, never cut. `dimensions` must equal the model's.
- `input`: a string or a list of 1 to 2048 non-empty strings (OpenAI's bound); token-id arrays are a 400.
- `encoding_format` `base64`: the little-endian float32 bytes of each vector, as OpenAI sends them.
The model is used as the service uses it: passages in slices under the model lock (between an ingest job's
slices), queries through the query batcher; requests count against the service's in-flight bound (429).
Errors are OpenAI's `{"error": {"message", "type", "param", "code"}}`: 400 for any bad request (OpenAI has no
422), 401 for a missing or unknown key, 404 an unknown model, 413, 429, 503 while loading, 500 a bug.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, FastAPI, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from pipelines.service.core import SlicedEmbedder
from pipelines.service.doors import READ_KEY, shaped_route
from pipelines.service.http import ErrorShape, InvalidInput, NotFound, Unauthorized, http_error
from pipelines.service.routes import CallerOf
from pipelines.service.runtime import ServiceRuntime
from retrieval.query_check import is_blank

PATH = "/v1/embeddings"
MAX_INPUTS = 2048  # OpenAI's bound per request; the 1 MiB body limit bounds the text


class EmbeddingInputError(InvalidInput):
    """A request /v1/embeddings cannot answer (an input, the dimensions, token arrays); `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class UnknownModel(NotFound):
    """A `model` that is not the served one (OpenAI's `model_not_found`)."""

    param = "model"


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    input: Any = Field(..., description="a string or a list of strings")
    model: StrictStr = Field(..., max_length=1000)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = Field(None, max_length=1000, description="accepted and ignored")
    input_type: Literal["document", "query"] = Field("document", description="extension: passage or query vectors")


class EmbeddingOut(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingOut]
    model: str
    usage: Usage


class OpenAIErrorBody(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIError(BaseModel):
    error: OpenAIErrorBody


def openai_error(exc: BaseException, extra_headers: dict[str, str]) -> Response:
    """OpenAI's error body; a 422 of the service's table is OpenAI's 400 (invalid_request_error)."""
    row = http_error(exc)
    status = 400 if row.status == 422 else row.status
    kind = "rate_limit_error" if status == 429 else "server_error" if status >= 500 else "invalid_request_error"
    code = "invalid_api_key" if isinstance(exc, Unauthorized) else "model_not_found" if \
        isinstance(exc, UnknownModel) else row.name
    headers = {**(getattr(exc, "headers", None) or {}), **extra_headers}
    if row.retry_after:
        headers.setdefault("Retry-After", row.retry_after)
    body = {"message": str(exc), "type": kind, "param": getattr(exc, "param", None), "code": code}
    return JSONResponse({"error": body}, status_code=status, headers=headers or None)


def model_names(settings_model: str, identity: str) -> frozenset[str]:
    """The names a request may give the served model: as configured, as recorded, and the last part of each."""
    return frozenset(n for name in (settings_model, identity) for n in (name, Path(name).name) if n)


def input_texts(value: Any) -> list[str]:
    """`input` as a list of texts: a string, or a list of 1 to MAX_INPUTS strings, none of them empty."""
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not texts:
        raise EmbeddingInputError("input: give a string or a non-empty list of strings", "input")
    if any(isinstance(t, int | list) for t in texts) and not all(isinstance(t, str) for t in texts):
        raise EmbeddingInputError("input: token-id arrays are not accepted; send the text (this model's tokenizer "
                                  "is not OpenAI's)", "input")
    if len(texts) > MAX_INPUTS:
        raise EmbeddingInputError(f"input: {len(texts)} inputs, more than the {MAX_INPUTS} allowed per request",
                                  "input")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise EmbeddingInputError(f"input[{i}]: must be a string, got {type(text).__name__}", "input")
        if is_blank(text):
            raise EmbeddingInputError(f"input[{i}]: must not be empty", "input")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise EmbeddingInputError(f"input[{i}]: not valid text (a lone surrogate)", "input") from None
    return texts


def embed(rt: ServiceRuntime, texts: list[str], input_type: str) -> tuple[list[list[float]], int]:
    """Vectors and the token count of `texts`; an input over the model's limit is an EmbeddingInputError."""
    model = SlicedEmbedder(rt.embedder, rt.model_lock)  # the lock ingest jobs and queries take as well
    counts, limit = model.count_tokens_many(texts), model.max_tokens
    for i, n in enumerate(counts):
        if n > limit:
            raise EmbeddingInputError(f"input[{i}]: {n} tokens, over the model's limit of {limit}; split or "
                                      "shorten it", "input")
    if input_type == "query":
        assert rt.batcher is not None  # set before the runtime reports itself loaded (require_ready)
        return rt.batcher.embed_queries(texts), sum(counts)
    return model.embed_documents(texts), sum(counts)


def encoded(vector: list[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def install_embeddings(app: FastAPI, rt: ServiceRuntime) -> dict[str, ErrorShape]:
    """Add `POST /v1/embeddings`; returns its path and error shape for the gate."""
    router = APIRouter(route_class=shaped_route(openai_error))
    names = model_names(rt.settings.embed_model, rt.model_id)

    @router.post(PATH, response_model=EmbeddingResponse, tags=["openai"], dependencies=[READ_KEY], responses={
        s: {"model": OpenAIError} for s in (400, 401, 404, 408, 411, 413, 429, 503)})
    async def embeddings(body: EmbeddingRequest, _: CallerOf) -> EmbeddingResponse:
        """OpenAI's embeddings API over the served model (passage vectors; `input_type: query` for queries)."""
        if body.model not in names:
            raise UnknownModel(f"The model {body.model[:200]!r} does not exist here; this service embeds with "
                               f"{rt.settings.embed_model!r}")
        texts = input_texts(body.input)
        rt.require_ready()
        dimension = rt.embedder.dimension
        if body.dimensions is not None and body.dimensions != dimension:
            raise EmbeddingInputError(f"dimensions: this model gives {dimension}-dimensional vectors, not "
                                      f"{body.dimensions}", "dimensions")
        with rt.admitted():
            vectors, tokens = await run_in_threadpool(embed, rt, texts, body.input_type)
        data = [EmbeddingOut(index=i, embedding=encoded(v, body.encoding_format)) for i, v in enumerate(vectors)]
        return EmbeddingResponse(data=data, model=body.model, usage=Usage(prompt_tokens=tokens, total_tokens=tokens))

    app.include_router(router)
    return {PATH: openai_error}
