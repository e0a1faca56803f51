"""The endpoints of the HTTP API, versioned under /v1 (plus /healthz, /readyz, /metrics)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, File, Form, Query, Request, Response, Security, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ingest.meta_fields import MetaSchema
from ingest.schema import DEFAULT_TENANT, Access, P
from ingest.store.access import Principal
from ingest.store.base import VectorStore
from ingest.store.filters import is_uuid
from pipelines.config import group_list
from pipelines.indexing.fields import MetaValueError, user_meta
from pipelines.indexing.run import compact_quietly
from pipelines.service.http import (
    Forbidden,
    InvalidInput,
    NotFound,
    NotReady,
    Overloaded,
    TooLarge,
    Unauthorized,
    UnsupportedType,
)
from pipelines.service.jobs import KEEP_JOBS, UploadedFile, display_name
from pipelines.service.models import (
    Deleted,
    DocumentOut,
    DocumentPage,
    ErrorOut,
    Health,
    JobOut,
    JobPage,
    PassageOut,
    RetrieveRequest,
    RetrieveResponse,
    SourceDeleted,
)
from pipelines.service.principals import Caller, audit
from pipelines.service.runtime import ServiceRuntime

Responses = dict[int | str, dict[str, Any]]  # FastAPI's `responses=`: status -> OpenAPI response fields
READ_ERRORS: Responses = {s: {"model": ErrorOut} for s in (400, 401, 408, 411, 413, 422, 429, 503)}
WRITE_ERRORS: Responses = {**READ_ERRORS, **{s: {"model": ErrorOut} for s in (403, 404, 415)}}
COPY_BLOCK = 1 << 20
MAX_FORM_FIELDS, MAX_FIELD_BYTES = 8, 64 << 10  # an upload needs no text fields: these bound what is held in memory
UPLOAD_PATH = "/v1/documents"


def caller_of(request: Request) -> Caller:
    """The caller the gate resolved for this request (gate.py puts it into the ASGI scope's state)."""
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):  # the gate answers such a request itself; never reached behind it
        raise Unauthorized("missing API key: send 'Authorization: Bearer KEY'", {"WWW-Authenticate": "Bearer"})
    return caller


CallerOf = Annotated[Caller, Depends(caller_of)]


def install_routes(app: FastAPI, rt: ServiceRuntime) -> None:
    # Keys are checked by the gate (gate.py) before the body is read; this only publishes the scheme in the
    # OpenAPI schema. Every route acts through the caller's view of the store (rt.store_for, rt.retrieve).
    read = write = Security(HTTPBearer(auto_error=False, description="a read key; uploads and deletes: a write "
                                       "key"))

    @app.post("/v1/retrieve", response_model=RetrieveResponse, dependencies=[read], responses=READ_ERRORS)
    async def retrieve(body: RetrieveRequest, caller: CallerOf) -> RetrieveResponse:
        """Top passages for a query, with scores per stage, source, page, heading path and character span."""
        started = time.perf_counter()
        with rt.admitted():
            mode, passages = await run_in_threadpool(rt.retrieve, caller.principal, body.query, body.top_k,
                                                     body.mode, body.filters, body.truncate, body.rerank, body.expand,
                                                     body.min_relevance)
        return RetrieveResponse(query=body.query, mode=mode,
                                passages=[PassageOut.model_validate(p.to_dict()) for p in passages],
                                took_ms=round((time.perf_counter() - started) * 1000, 2))

    @app.post(UPLOAD_PATH, status_code=202, response_model=JobOut, dependencies=[write], responses=WRITE_ERRORS,
              form_limits={"max_files": rt.settings.max_upload_files, "max_fields": MAX_FORM_FIELDS,
                           "max_part_size": MAX_FIELD_BYTES})
    async def upload(files: Annotated[list[UploadFile], File(description="one or more documents")],
                     response: Response, caller: CallerOf,
                     groups: Annotated[str, Form(max_length=4096, description="comma-separated groups that may "
                                                 "read these documents (empty: every user of the tenant)")] = "",
                     meta: Annotated[str, Form(max_length=MAX_FIELD_BYTES, description="user metadata of these "
                                               "documents as a JSON object of scalars, e.g. "
                                               '{"projekt": "Umzug", "frist": "2024-06-30"} (payload meta.KEY)')] = ""
                     ) -> JobOut:
        """Store the files in a private folder and queue an ingest job; poll GET /v1/jobs/{job_id}. The
        documents belong to the key's tenant."""
        rt.require_ready()
        if rt.jobs is None or not rt.jobs.accepting:
            raise NotReady("the service is shutting down")
        access = upload_access(caller.principal, groups)
        user = upload_meta(meta, rt.settings.meta_schema)
        limit = rt.settings.max_upload_files
        if len(files) > limit:
            raise TooLarge(f"{len(files)} files in one upload, more than the {limit} allowed")
        folder = Path(tempfile.mkdtemp(prefix="job-", dir=rt.uploads.path))  # mode 0700, inside this service's root
        try:
            saved = [await _save(f, i, folder, rt) for i, f in enumerate(files)]
            _check_unique(saved)
            job = rt.jobs.submit(saved, folder, caller, access, user)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        if job is None:
            shutil.rmtree(folder, ignore_errors=True)
            raise Overloaded(f"{rt.settings.job_queue_size} ingest jobs are waiting; retry later",
                             {"Retry-After": "10"})
        audit(caller, "upload", job_id=job.job_id, files=len(saved), sources=[f.source for f in saved],
              groups=list(access.groups))
        rt.metrics.job_queue.set(rt.jobs.depth)
        response.headers["Location"] = f"/v1/jobs/{job.job_id}"
        return JobOut(**job.to_dict())

    @app.get("/v1/jobs/{job_id}", response_model=JobOut, dependencies=[read], responses=READ_ERRORS | {
        404: {"model": ErrorOut}})
    async def get_job(job_id: str, caller: CallerOf) -> JobOut:
        """State of an ingest job: queued, running, succeeded or failed, with per-file results and counts.
        A job is its uploader's (same tenant and groups; the tenant's admins): for anyone else it is not there."""
        job = rt.jobs.get(job_id, caller.principal) if rt.jobs is not None else None
        if job is None:
            raise NotFound(f"no job {job_id[:80]!r} (the latest {KEEP_JOBS} jobs are kept in memory until a restart)")
        return JobOut(**job.to_dict())

    @app.get("/v1/jobs", response_model=JobPage, dependencies=[read], responses=READ_ERRORS)
    async def list_jobs(caller: CallerOf, limit: Annotated[int, Query(ge=1, le=KEEP_JOBS)] = 50) -> JobPage:
        """The caller's ingest jobs, newest first (kept in memory until a restart)."""
        jobs = rt.jobs.visible(caller.principal) if rt.jobs is not None else []
        return JobPage(total=len(jobs), jobs=[JobOut(**j.to_dict()) for j in jobs[:limit]])

    _install_documents(app, rt, read, write)
    _install_probes(app, rt, read)


def _deleted(store: VectorStore, field: str, value: str) -> int:
    """Delete a document (by doc_id) or a source, then vacuum where points went (the edge engine's BM25 counts
    deleted points until then)."""
    points = store.delete_doc(value) if field == P.DOC_ID else store.delete_source(value)
    if points:
        compact_quietly(store)
    return points


def upload_meta(text: str, schema: MetaSchema) -> dict:
    """An upload's `meta` form field: a JSON object of scalars (checked as a sidecar's `meta` is); else a 422."""
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MetaValueError(f"meta: not a JSON object ({exc})") from exc
    if not isinstance(data, dict):
        raise MetaValueError("meta: must be a JSON object of names to values")
    return user_meta(data, "meta", schema)


def upload_access(principal: Principal, groups: str) -> Access:
    """The access fields of an upload: the caller's tenant (the owner: `default`), the form's groups. A caller
    restricted to groups may give its documents only groups it is in (it could not read them otherwise);
    the tenant's admins and the owner any."""
    access = Access(principal.tenant or DEFAULT_TENANT, group_list(groups))  # an AccessError: 422
    foreign = sorted(set(access.groups) - principal.groups)
    if foreign and not principal.is_owner and principal.role != "admin":
        raise Forbidden(f"groups: this key may only give its uploads groups it is in, not {foreign[:5]}")
    return access


def _install_documents(app: FastAPI, rt: ServiceRuntime, read, write) -> None:
    @app.get("/v1/documents", response_model=DocumentPage, dependencies=[read], responses=READ_ERRORS)
    async def list_documents(caller: CallerOf, offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
                             limit: Annotated[int, Query(ge=1, le=1000)] = 50) -> DocumentPage:
        """Stored sources the key may read, sorted, one page at a time, with their doc ids, chunk counts and
        content hashes."""
        rt.require_ready()
        sources = await run_in_threadpool(rt.store_for(caller.principal).sources)
        names = sorted(sources)
        page = [DocumentOut(source=s, doc_ids=sorted(sources[s]["doc_ids"]), chunks=sources[s]["chunks"],
                            doc_hash=sources[s]["doc_hash"]) for s in names[offset: offset + limit]]
        return DocumentPage(total=len(names), offset=offset, limit=limit, documents=page)

    @app.delete("/v1/documents/{doc_id}", response_model=Deleted, dependencies=[write],
                responses=WRITE_ERRORS)
    async def delete_document(doc_id: str, caller: CallerOf) -> Deleted:
        """Remove every point of one document (its doc_id as listed by GET /v1/documents; any case). A
        document the key may not read is not there (404)."""
        rt.require_ready()
        if not is_uuid(doc_id):
            raise InvalidInput(f"doc_id: {doc_id[:80]!r} is not a document id (a UUID)")
        doc_id = doc_id.lower()  # ids are stored as lower-case UUIDs; an upper-case spelling is the same id
        deleted = await run_in_threadpool(_deleted, rt.store_for(caller.principal), P.DOC_ID, doc_id)
        audit(caller, "delete", doc_id=doc_id, points_deleted=deleted)
        if not deleted:
            raise NotFound(f"no points stored for doc_id {doc_id}")
        return Deleted(doc_id=doc_id, points_deleted=deleted)

    @app.delete("/v1/documents", response_model=SourceDeleted, dependencies=[write], responses=WRITE_ERRORS)
    async def delete_source(source: Annotated[str, Query(min_length=1, max_length=4096, description="a source "
                                                         "as listed, e.g. upload:NAME")], caller: CallerOf
                            ) -> SourceDeleted:
        """Remove every point of one source (every version the key may read). Another tenant's is not there (404)."""
        rt.require_ready()
        deleted = await run_in_threadpool(_deleted, rt.store_for(caller.principal), P.SOURCE, source)
        audit(caller, "delete", source=source, points_deleted=deleted)
        if not deleted:
            raise NotFound(f"no points stored for source {source[:200]!r}")
        return SourceDeleted(source=source, points_deleted=deleted)


def _install_probes(app: FastAPI, rt: ServiceRuntime, read) -> None:
    @app.get("/healthz", response_model=Health)
    async def healthz() -> Health:
        """The process answers (liveness); it says nothing about the model or the store."""
        return Health(status="ok")

    @app.get("/readyz", response_model=Health, responses={503: {"model": ErrorOut}})
    async def readyz(request: Request) -> Health:
        """Model loaded, Qdrant reachable and the collection built by this model. With keys set, the
        model, store and reason (server paths) are shown only to an operator: an env key (one-tenant setup)
        or a tenant admin; a tenant's read or write key sees the status alone."""
        caller = request.scope.get("state", {}).get("caller")
        trusted = not rt.principals.enabled or (caller is not None and (
            caller.principal.role == "admin" or caller.key.startswith("env:")))
        try:
            await run_in_threadpool(rt.check_ready)
        except NotReady as exc:
            if trusted:
                raise
            raise type(exc)("not ready (details with a read key)", exc.headers) from exc  # same kind, status
        return Health(status="ready", detail=f"{rt.model_id} on {rt.store.location}" if trusted else None)

    @app.get("/metrics", dependencies=[read], response_class=Response, responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: {"model": ErrorOut}})
    async def metrics() -> Response:
        """Prometheus text format: requests and latency per endpoint template, ingest counters, embedding
        time. Labels are bounded: no tenant, key, source or document id ever becomes one."""
        if rt.jobs is not None:
            rt.metrics.job_queue.set(rt.jobs.depth)
        return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _save(upload: UploadFile, index: int, folder: Path, rt: ServiceRuntime) -> UploadedFile:
    """Copy one upload into the job folder as `<index><ext>`, counting bytes against the limit."""
    name = display_name(upload.filename)
    ext = Path(name).suffix.lower()
    if ext not in rt.extensions:
        raise UnsupportedType(f"{name}: unsupported file type {ext or '(none)'!r} (allowed: "
                              f"{', '.join(sorted(rt.extensions))})")
    path = folder / f"{index:04d}{ext}"
    limit, size = rt.settings.max_upload_bytes, 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        while block := await upload.read(COPY_BLOCK):
            size += len(block)
            if size > limit:
                raise TooLarge(f"{name}: larger than the limit of {limit} bytes per file")
            out.write(block)
    # A 0-byte file is saved like any other: the job reports it per file, as the CLI does (`removed`: the
    # stored version of its source is deleted; `skipped`: there was none), and the other files go on.
    return UploadedFile(name, path)


def _check_unique(files: list[UploadedFile]) -> None:
    seen: set[str] = set()
    for f in files:
        if f.name in seen:
            raise InvalidInput(f"{f.name}: uploaded twice in one request (names must be unique)")
        seen.add(f.name)

