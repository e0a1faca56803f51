"""#12 over HTTP: keys of two tenants (and groups) against a real server. No route lets one tenant read, list,
fetch, delete or follow the jobs of another; groups narrow reads; wrong role 403, unknown key 401; every
write and delete leaves one audit line. The keys file itself: hashes only, rotation, revocation, 0600, CLI."""

from __future__ import annotations

import json
import logging
import os
import stat

import pytest

from ingest.errors import ConfigError
from ingest.store.access import Principal
from pipelines.cli.main import main
from pipelines.service.http import KeyRing, Misconfigured
from pipelines.service.principals import KeysFile, Principals, add_key, load_keys, revoke_key
from tests.test_service import assert_error
from tests.test_service_support import live_server, service_settings, wait_job

HR = "Personalakte: Die Kündigungsfrist für Frau Meier beträgt drei Monate zum Quartalsende. "
KANTINE = "Hausordnung: Die Kantine ist montags bis freitags von elf bis vierzehn Uhr geöffnet. "
VERTRIEB = "Vertrieb: Der Rabatt für Großkunden beträgt zwölf Prozent auf den Listenpreis. "
QUERY = "Kündigungsfrist Kantine Rabatt Großkunden Quartalsende"
ENV_READ = "umgebung-lesen-1"
KEYS = {  # name -> (tenant, groups, role)
    "acme-read": ("acme", (), "read"),
    "acme-hr": ("acme", ("hr",), "read"),
    "acme-write": ("acme", (), "write"),
    "acme-admin": ("acme", (), "admin"),
    "globex-read": ("globex", (), "read"),
    "globex-write": ("globex", (), "write"),
}


def _files(name: str, text: str) -> list:
    return [("files", (name, (text * 4).encode(), "text/plain"))]


@pytest.fixture(scope="module")
def tenants(tiny_model_dir, tmp_path_factory):
    """A server with a keys file of two tenants and an env read key; acme's HR letter (group hr), acme's
    canteen notice (no groups) and globex's sales note, each uploaded with its tenant's key."""
    root = tmp_path_factory.mktemp("access")
    keys_file = root / "keys.toml"
    keys = {name: add_key(keys_file, t, g, r, name)[0] for name, (t, g, r) in KEYS.items()}
    settings = service_settings(tiny_model_dir, root / "q", keys_file=str(keys_file), read_keys=ENV_READ,
                                upload_dir=str(root))
    with live_server(settings) as srv:
        jobs = {}
        for key, name, text, groups in (("acme-admin", "hr.txt", HR, "hr"), ("acme-write", "kantine.txt", KANTINE, ""),
                                        ("globex-write", "vertrieb.txt", VERTRIEB, "")):
            with srv.client(keys[key]) as c:
                r = c.post("/v1/documents", files=_files(name, text), data={"groups": groups} if groups else None)
                assert r.status_code == 202, r.text
                jobs[name] = wait_job(c, r.json()["job_id"])
                assert jobs[name]["state"] == "succeeded", jobs[name]
        srv.keys, srv.jobs, srv.keys_file = keys, jobs, keys_file  # type: ignore[attr-defined]
        yield srv


def _doc_id(srv, key: str, source: str) -> str:
    with srv.client(srv.keys[key]) as c:
        docs = {d["source"]: d["doc_ids"] for d in c.get("/v1/documents").json()["documents"]}
    (doc_id,) = docs[source]
    return doc_id


def _sources(srv, key: str, **body) -> set[str]:
    with srv.client(srv.keys.get(key, key)) as c:
        r = c.post("/v1/retrieve", json={"query": QUERY, "top_k": 20, **body})
    assert r.status_code == 200, r.text
    return {p["source"] for p in r.json()["passages"]}


@pytest.mark.parametrize("stages", [{"mode": "bm25"}, {"mode": "dense"}, {"mode": "hybrid"},
                                    {"mode": "hybrid", "expand": 2}])
def test_retrieve_sees_only_the_keys_tenant_and_groups(tenants, stages):
    """Every search mode and neighbour expansion: a key reads its tenant's documents without groups, plus
    those of its groups; never another tenant's; the env shortcut key is tenant `default` (none here)."""
    seen = {key: _sources(tenants, key, **stages) for key in (*KEYS, ENV_READ)}
    assert seen["acme-read"] == seen["acme-write"] == {"upload:kantine.txt"}
    assert seen["acme-hr"] == {"upload:kantine.txt", "upload:hr.txt"}
    assert seen["acme-admin"] == {"upload:kantine.txt"}  # admin is a role, not a group membership
    assert seen["globex-read"] == seen["globex-write"] == {"upload:vertrieb.txt"}
    assert seen[ENV_READ] == set()


def test_a_filter_naming_another_tenant_narrows_never_widens(tenants):
    for filters in ({"tenant": "globex"}, {"source": "upload:vertrieb.txt"}, {"groups": "hr"},
                    {"doc_id": _doc_id(tenants, "globex-read", "upload:vertrieb.txt")}):
        assert _sources(tenants, "acme-read", filters=filters) == set(), filters
    assert _sources(tenants, "acme-hr", filters={"groups": "hr"}) == {"upload:hr.txt"}


def test_document_lists_are_per_tenant_and_group(tenants):
    def listed(key: str) -> set[str]:
        with tenants.client(tenants.keys.get(key, key)) as c:
            page = c.get("/v1/documents").json()
        assert page["total"] == len(page["documents"])
        return {d["source"] for d in page["documents"]}

    assert listed("acme-read") == {"upload:kantine.txt"}
    assert listed("acme-hr") == {"upload:kantine.txt", "upload:hr.txt"}
    assert listed("globex-read") == {"upload:vertrieb.txt"}
    assert listed(ENV_READ) == set()


def test_another_tenants_document_cannot_be_deleted_and_answers_404(tenants, caplog):
    """Deleting acme's document with globex's write key: 404 (as if absent), by doc id and by source;
    the document is still there. acme's own key then deletes it; every attempt is an audit line."""
    keys = tenants.keys
    with tenants.client(keys["acme-write"]) as c:
        job = wait_job(c, c.post("/v1/documents", files=_files("wegwerf.txt", KANTINE + "Wegwerf. ")).json()["job_id"])
    doc_id = _doc_id(tenants, "acme-write", "upload:wegwerf.txt")
    caplog.set_level(logging.INFO, logger="german_rag.audit")
    with tenants.client(keys["globex-write"]) as c:
        assert_error(c.delete(f"/v1/documents/{doc_id}"), 404, "not_found")
        assert_error(c.delete(f"/v1/documents/{doc_id.upper()}"), 404, "not_found")
        assert_error(c.delete("/v1/documents", params={"source": "upload:wegwerf.txt"}), 404, "not_found")
    with tenants.client(keys["acme-hr"]) as c:  # a reader of the tenant: 403 before anything is looked up
        assert_error(c.delete(f"/v1/documents/{doc_id}"), 403, "forbidden")
    with tenants.client(keys["acme-write"]) as c:
        assert "upload:wegwerf.txt" in {d["source"] for d in c.get("/v1/documents").json()["documents"]}
        r = c.delete("/v1/documents", params={"source": "upload:wegwerf.txt"})
        assert r.status_code == 200 and r.json()["points_deleted"] == job["files"][0]["chunks"], r.text
    deletes = [r for r in caplog.records if r.name == "german_rag.audit" and r.action == "delete"]
    chunks = job["files"][0]["chunks"]
    assert [(r.tenant, r.points_deleted) for r in deletes] == [("globex", 0)] * 3 + [("acme", chunks)]
    assert all(r.key.startswith("file:") and r.key.endswith(("globex-write", "acme-write")) for r in deletes)


def test_jobs_belong_to_their_uploader(tenants):
    """Another tenant's job id is 404 (not 403); within the tenant a key without the documents' group does
    not see the job either; the tenant's admin does. GET /v1/jobs lists only the caller's."""
    hr_job, kantine_job = tenants.jobs["hr.txt"]["job_id"], tenants.jobs["kantine.txt"]["job_id"]
    expect = {"globex-read": set(), "globex-write": set(), "acme-read": {kantine_job},
              "acme-write": {kantine_job}, "acme-hr": set(), "acme-admin": {hr_job, kantine_job}, ENV_READ: set()}
    for key, visible in expect.items():
        with tenants.client(tenants.keys.get(key, key)) as c:
            for job_id in (hr_job, kantine_job):
                r = c.get(f"/v1/jobs/{job_id}")
                if job_id in visible:
                    assert r.status_code == 200, (key, r.text)
                else:
                    assert_error(r, 404, "not_found")
                    assert "hr.txt" not in r.text and "kantine" not in r.text
            listed = {j["job_id"] for j in c.get("/v1/jobs").json()["jobs"]}
        assert listed & {hr_job, kantine_job} == visible, key
        assert tenants.jobs["vertrieb.txt"]["job_id"] not in listed or key.startswith("globex")


def test_keys_are_checked_401_and_403(tenants):
    keys = tenants.keys
    unknown = "grk_0123abcd_" + "x" * 43
    forged = _forged(keys["acme-read"])  # a real id with a wrong secret
    for key in (None, "falsch", unknown, forged):
        with tenants.client(key) as c:
            assert_error(c.post("/v1/retrieve", json={"query": QUERY}), 401, "unauthorized")
            assert_error(c.get("/v1/documents"), 401, "unauthorized")
    for key in ("acme-read", "acme-hr", "globex-read"):
        with tenants.client(keys[key]) as c:
            assert_error(c.post("/v1/documents", files=_files("x.txt", KANTINE)), 403, "forbidden")
            assert_error(c.delete("/v1/documents", params={"source": "upload:kantine.txt"}), 403, "forbidden")
    with tenants.client(ENV_READ) as c:
        assert_error(c.post("/v1/documents", files=_files("x.txt", KANTINE)), 403, "forbidden")


def test_upload_groups_are_the_callers(tenants):
    """A writer without groups may not restrict its uploads to a group (it could not read them); a bad
    group name is 422; the tenant's admin may give any group."""
    with tenants.client(tenants.keys["acme-write"]) as c:
        assert_error(c.post("/v1/documents", files=_files("x.txt", HR), data={"groups": "hr"}), 403, "forbidden")
        assert_error(c.post("/v1/documents", files=_files("x.txt", HR), data={"groups": "a\tb"}), 422, "invalid")


def test_an_upload_as_one_tenant_is_invisible_to_the_other(tenants, caplog):
    """The same file name uploaded by both tenants: two documents, each seen only by its tenant; audit
    lines name the tenant, key, source and counts of the upload and of the ingest."""
    caplog.set_level(logging.INFO, logger="german_rag.audit")
    doc_ids = {}
    for key, text in (("globex-write", VERTRIEB + "Zweitschrift. "), ("acme-write", KANTINE + "Zweitschrift. ")):
        with tenants.client(tenants.keys[key]) as c:
            job = wait_job(c, c.post("/v1/documents", files=_files("gemeinsam.txt", text)).json()["job_id"])
            assert job["state"] == "succeeded", job
        doc_ids[key] = _doc_id(tenants, key, "upload:gemeinsam.txt")
    assert doc_ids["globex-write"] != doc_ids["acme-write"]
    for reader, writer in (("acme-read", "acme-write"), ("globex-read", "globex-write")):
        with tenants.client(tenants.keys[reader]) as c:
            docs = {d["source"]: d["doc_ids"] for d in c.get("/v1/documents").json()["documents"]}
        assert docs["upload:gemeinsam.txt"] == [doc_ids[writer]]
        hits = _sources(tenants, reader, query="Zweitschrift", mode="bm25")
        assert hits == {"upload:gemeinsam.txt"}
    lines = [r for r in caplog.records if r.name == "german_rag.audit"]
    uploads = [r for r in lines if r.action == "upload"]
    ingests = [r for r in lines if r.action == "ingest"]
    assert [(r.tenant, r.sources, r.files) for r in uploads] == [("globex", ["upload:gemeinsam.txt"], 1),
                                                                ("acme", ["upload:gemeinsam.txt"], 1)]
    assert [(r.tenant, r.source, r.status) for r in ingests] == [("globex", "upload:gemeinsam.txt", "ingested"),
                                                                ("acme", "upload:gemeinsam.txt", "ingested")]
    assert all(r.points_written > 0 and r.key.startswith("file:") for r in ingests)
    assert not any(k in r.getMessage() + str(r.__dict__) for r in lines for k in tenants.keys.values())


def test_metrics_name_no_tenant_source_or_key(tenants):
    with tenants.client(tenants.keys["globex-read"]) as c:
        text = c.get("/metrics").text
    assert "german_rag_http_requests_total" in text
    for secret in ("acme", "globex", "kantine", "vertrieb", "hr.txt", "grk_"):
        assert secret not in text.lower(), secret
    assert 'endpoint="/v1/jobs/{job_id}"' in text  # templates, not ids


def test_a_revoked_key_stops_working_and_a_new_one_works_without_restart(tenants):
    """Rotation: a second key of the same principal works at once; revoking the first stops it at the next
    request (the service reads the file again when it changes)."""
    new, record = add_key(tenants.keys_file, "globex", (), "read", "globex-read-2")
    with tenants.client(new) as c:
        assert "upload:vertrieb.txt" in {d["source"] for d in c.get("/v1/documents").json()["documents"]}
    revoke_key(tenants.keys_file, record.key_id)
    with tenants.client(new) as c:
        assert_error(c.get("/v1/documents"), 401, "unauthorized")
    with tenants.client(tenants.keys["globex-read"]) as c:
        assert c.get("/v1/documents").status_code == 200


def _forged(key: str) -> str:
    return key[:-1] + ("A" if key[-1] != "A" else "B")


# -- the keys file -----------------------------------------------------------------------------------------
def test_keys_file_keeps_salted_hashes_only_with_mode_0600(tmp_path):
    path = tmp_path / "keys.toml"
    one, first = add_key(path, "acme", ("hr",), "read", "a")
    two, second = add_key(path, "acme", ("hr",), "read", "b")  # rotation: two keys, one principal
    text = path.read_text()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for key in (one, two):
        # grk_<id>_<secret>: the secret (base64url, may itself hold "_") is everything after the second "_"
        assert key.startswith("grk_") and key not in text and key.split("_", 2)[2] not in text
    assert first.salt != second.salt and first.hash != second.hash
    assert [f.name for f in tmp_path.iterdir()] == ["keys.toml"]  # the temporary file was renamed
    keys = KeysFile(path)
    callers = [keys.resolve(k.encode()) for k in (one, two)]
    assert callers[0] and callers[1] and callers[0].principal == callers[1].principal == Principal(
        "acme", frozenset({"hr"}), "read")
    assert keys.cached(one.encode()) == callers[0]  # no second derivation
    assert keys.resolve(_forged(one).encode()) is None and keys.resolve(b"grk_ffffffff_" + b"a" * 43) is None
    revoke_key(path, first.key_id)
    assert keys.resolve(one.encode()) is None and keys.resolve(two.encode()) is not None
    assert [r.key_id for r in load_keys(path)] == [second.key_id]
    with pytest.raises(Exception, match="no key with id"):
        revoke_key(path, first.key_id)


def test_a_broken_keys_file_is_named_at_start_and_fails_closed_later(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[[key]]\nid = "zz"\ntenant = "acme"\nrole = "read"\nsalt = "00"\nhash = "00"\n')
    with pytest.raises(ConfigError, match=r"keys\.toml, key #1: id 'zz'"):
        KeysFile(path)
    key, _ = add_key(tmp_path / "ok.toml", "acme", (), "write")
    keys = KeysFile(tmp_path / "ok.toml")
    assert keys.resolve(key.encode()) is not None
    (tmp_path / "ok.toml").write_text("[[key]\nkaputt")
    with pytest.raises(Misconfigured, match="keys file cannot be read"):
        keys.cached(key.encode())


def test_env_keys_and_keys_file_together(tmp_path):
    key, _ = add_key(tmp_path / "k.toml", "acme", (), "admin")
    both = Principals(KeyRing.from_settings(None, _secret("schreiben")), KeysFile(tmp_path / "k.toml"),
                      Principal(None))
    assert both.resolve(b"schreiben").principal == Principal("default", frozenset(), "write")
    assert both.resolve(key.encode()).principal == Principal("acme", frozenset(), "admin")
    assert both.resolve(b"lesen") is None


def _secret(text: str):
    from pydantic import SecretStr

    return SecretStr(text)


def test_cli_keys_add_list_revoke(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GERMAN_RAG_KEYS_FILE", str(tmp_path / "keys.toml"))
    assert main(["keys", "add", "--tenant", "acme", "--groups", "hr,recht", "--role", "read", "--name", "hr-bot"]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("grk_") and "\n" not in key
    assert main(["keys", "add", "--tenant", "globex", "--role", "write", "--json"]) == 0
    added = json.loads(capsys.readouterr().out)
    assert added["key"].startswith("grk_") and added["name"] == "globex-write"
    assert main(["keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["keys"]
    assert [(k["name"], k["tenant"], k["groups"], k["role"]) for k in listed] == [
        ("hr-bot", "acme", ["hr", "recht"], "read"), ("globex-write", "globex", [], "write")]
    assert all(set(k) == {"key_id", "name", "tenant", "groups", "role", "created"} for k in listed)
    assert main(["keys", "list"]) == 0
    shown = capsys.readouterr().out
    assert "hr-bot" in shown and key not in shown and added["key"] not in shown
    assert main(["keys", "revoke", listed[0]["key_id"]]) == 0
    capsys.readouterr()
    assert [r.name for r in load_keys(tmp_path / "keys.toml")] == ["globex-write"]
    assert main(["keys", "revoke", "deadbeef"]) == 2
    assert main(["keys", "add", "--tenant", "a b\t", "--role", "read"]) == 2
    assert "no key with id" in capsys.readouterr().err


def test_a_writer_outside_a_group_cannot_replace_that_groups_document(tenants):
    """#12: uploading a file named like an hr document with a key not in hr would delete (or re-label) a
    version that key may not read: that file fails, the hr document stays as it was; the admin may replace it."""
    before = _doc_id(tenants, "acme-hr", "upload:hr.txt")
    with tenants.client(tenants.keys["acme-write"]) as c:
        job = wait_job(c, c.post("/v1/documents", files=_files("hr.txt", KANTINE)).json()["job_id"])
    (result,) = job["files"]
    assert result["status"] == "failed" and "groups this key is not in" in result["error"]
    assert _doc_id(tenants, "acme-hr", "upload:hr.txt") == before
    assert "upload:hr.txt" in _sources(tenants, "acme-hr", mode="bm25")
    assert "upload:hr.txt" not in _sources(tenants, "acme-read", mode="bm25")


def test_new_keys_beyond_the_derivation_limit_get_429_while_known_keys_work(tenants, monkeypatch):
    """#12: a key not seen before costs a scrypt derivation; past MAX_DERIVATIONS in flight a made-up key is
    refused with 429 instead of queueing on every core, and a key already resolved is not held up."""
    from pipelines.service import gate

    assert _sources(tenants, "acme-read", mode="bm25")  # resolved once: cached from now on
    monkeypatch.setattr(gate, "MAX_DERIVATIONS", 0)  # as if every slot were taken by a flood
    with tenants.client("grk_deadbeef_" + "x" * 43) as c:
        r = c.post("/v1/retrieve", json={"query": QUERY})
    assert_error(r, 429, "overloaded")
    assert r.headers["retry-after"] == "1"
    assert _sources(tenants, "acme-read", mode="bm25")


def test_readyz_details_are_for_operators_not_tenant_keys(tenants):
    """#12 review: /readyz details name the model folder and the store path (server internals): a tenant's read or
    write key sees the status alone; a tenant admin and the env keys (a one-tenant setup) see the details."""
    for name in ("acme-read", "acme-write", "globex-read"):
        with tenants.client(tenants.keys[name]) as c:
            assert c.get("/readyz").json() == {"status": "ready", "detail": None}, name
    for key in (tenants.keys["acme-admin"], ENV_READ):
        with tenants.client(key) as c:
            assert c.get("/readyz").json()["detail"], key
