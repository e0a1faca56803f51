"""One error root for the whole project: every error raised on purpose is a `GermanRagError` with a `kind`.

The kind says what a caller can do about it, and it alone picks the CLI's exit code
(pipelines/cli/main.py, EXIT_CODES) and, with a few finer rows, the HTTP status
(pipelines/service/http.py, HTTP_ERRORS). Nothing tells errors apart by their message.

    usage          the caller asked for something malformed or out of range (a flag, a filter, a query,
                   an API argument): fix the call. CLI 2; HTTP 4xx.
    configuration  the setup is wrong (settings, the model, the collection): fix the configuration; retrying
                   the same call does not help. CLI 2; HTTP 503 (the service cannot serve this).
    input          one input failed (a file, an over-long text, a dataset, one request's body): the
                   others are unaffected. CLI 1; HTTP 4xx.
    unavailable    a dependency did not answer (Qdrant through every retry, a store held by another
                   process, a service still loading or overloaded): retry later. CLI 3; HTTP 503/429.
    internal       a bug or a broken invariant (an ingest report that does not balance). CLI 70; HTTP 500.

Where each project error sits (the class names stay, so callers keep working):

    IngestError               (ingest's own base; internal unless a subclass says otherwise)
      ParseError, EmptyDocumentError, LimitError   input: one file
      TokenLimitError                              input: one text (a chunk, a query) over the model's limit
      ModelUnavailableError                        configuration: a model not found (offline, a bad directory)
      BackendError, SparseConfigError              configuration: an embedding backend or analyzer setting
      ChunkOptionsError                            configuration: chunk size and overlap
      OcrUnavailableError (ingest.ocr)             configuration: tesseract or a language's data not installed
      OcrPageError (ingest.ocr)                    input: one page's OCR failed or timed out (reported, the
                                                   file's other pages kept)
    StoreError                (no longer an IngestError: retrieval meets it too) configuration: no URL or path,
                              a missing collection when querying (wrong --collection or not ingested yet),
                              a collection built by another model, a corrupt edge shard, a bad collection name
      StoreUnavailableError                        unavailable: Qdrant did not answer through every retry
      StoreLockedError                             unavailable: an embedded store held by another process
                                                   (most often a second ingest run still going: retry later)
      FilterError                                  usage: a filter field or value the store cannot take
    RetrievalError            usage: an invalid retrieval argument (mode, fusion, weights)
      QueryError, EmptyQueryError                  usage: the query or its options (empty, too long, range)
      RerankerUnavailableError                     configuration: the cross-encoder cannot be loaded
      BudgetError (retrieval.context)              usage: a context budget too small for one source header
      TokenizerError (retrieval.tokens)            configuration: the `context_tokenizer` cannot be read
      PromptError (retrieval.prompt)               configuration: the `context_prompt` template unreadable or
                                                   without {context}/{question}
    pipelines.config ConfigError, UsageError       the classes of this module
    DatasetError (evaluation)                      input: the one dataset of an `eval` run
    AccessError (ingest.schema)                    usage: a tenant, group or principal that cannot be used
    MetaFieldError (ingest.meta_fields)            usage: a user metadata key or value that cannot be stored
                                                   (a bad key, a value not of its declared kind, a list)
    SidecarError (indexing)                        input: one file's broken NAME.meta.json (that file fails)
    MetaValueError (indexing.fields)               input: user metadata that cannot be stored (--meta: usage)
    ServiceError (pipelines/service/http.py)       each of its classes names its own kind (the doors' too:
                                                   dify.py, dify_filters.py, openai_embeddings.py)

A class joins a kind by inheriting the kind's base first (`class ParseError(InputError, IngestError)`), so
`isinstance(exc, InputError)` holds and `exc.kind` is found on the kind's base before any package base's
default (StoreError and RetrievalError set one for their direct raises; IngestError does not). Code looks
at `kind`, never at the message: where a library gives one exception type for several causes (qdrant-client's
"already accessed", Starlette's form limits), its adapter reads the message once and raises a typed error.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    USAGE = "usage"
    CONFIGURATION = "configuration"
    INPUT = "input"
    UNAVAILABLE = "unavailable"
    INTERNAL = "internal"


class GermanRagError(Exception):
    """Base class of every error the project raises on purpose; `kind` says what a caller can do."""

    kind: ErrorKind = ErrorKind.INTERNAL

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later without any change (a dependency was unavailable)."""
        return self.kind is ErrorKind.UNAVAILABLE


class UsageError(GermanRagError):
    """A malformed or out-of-range argument (a flag, a filter, a query, an API parameter); the message names it."""

    kind = ErrorKind.USAGE


class ConfigError(GermanRagError):
    """The configuration is invalid; the message names the field, where its value came from, and what is wrong."""

    kind = ErrorKind.CONFIGURATION


class InputError(GermanRagError):
    """One input (a file, a text, a dataset, a request) cannot be processed; the others are unaffected."""

    kind = ErrorKind.INPUT


class UnavailableError(GermanRagError):
    """A dependency (the store, the model service) did not answer; the same call may succeed later."""

    kind = ErrorKind.UNAVAILABLE


class InternalError(GermanRagError):
    """A bug or a broken invariant: nothing the caller did or can change."""

    kind = ErrorKind.INTERNAL


def kind_of(exc: BaseException) -> ErrorKind:
    """An error's kind; anything that is not a GermanRagError is a bug (internal)."""
    return exc.kind if isinstance(exc, GermanRagError) else ErrorKind.INTERNAL
