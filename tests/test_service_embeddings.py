"""OpenAI-compatible `POST /v1/embeddings` on a real uvicorn server (tiny German model), called with the
`openai` Python client itself: vectors equal the project's embedder's, usage counts the model's tokens, base64 is
little-endian float32, and every bad request is a 4xx in OpenAI's error shape."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from pipelines.service.openai_embeddings import MAX_INPUTS
from tests.test_service_support import live_server, service_settings

KEY = "lesen-schluessel-1"
TEXTS = ["Der Urlaub beträgt jährlich dreißig Arbeitstage.", "Die Kantine öffnet um elf Uhr.",
         "Kündigungsfrist: drei Monate zum Quartalsende."]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("embeddings")
    with live_server(service_settings(tiny_model_dir, root / "q", read_keys=KEY, upload_dir=str(root))) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=KEY, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def model(tiny_model_dir) -> str:
    return str(tiny_model_dir)  # the `embed_model` setting, as `german-rag config` shows it


def _raw(server, body: object, key: str | None = KEY) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=server.url, timeout=60, headers=headers) as c:
        if isinstance(body, bytes):
            return c.post("/v1/embeddings", content=body, headers={"Content-Type": "application/json"})
        return c.post("/v1/embeddings", json=body)


def assert_openai_error(r: httpx.Response, status: int, code: str, match: str = "", param: str | None = None) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert error["code"] == code and match in error["message"] and error["param"] == param, error
    assert error["type"] == ("invalid_request_error" if status < 429 else "server_error"), error


def test_one_string_equals_the_projects_passage_embedding(client, model, tiny_embedder, tiny_model_dir):
    """The vector is the passage vector ingest stores (embed_documents), for the configured name, the name's
    last part and the recorded identity alike; usage counts the model's tokens."""
    expected = tiny_embedder.embed_documents([TEXTS[0]])[0]
    tokens = tiny_embedder.count_tokens(TEXTS[0])
    for name in (model, Path(model).name, str(Path(model).resolve())):
        got = client.embeddings.create(model=name, input=TEXTS[0], encoding_format="float")
        assert got.model == name and len(got.data) == 1 and got.data[0].index == 0
        assert len(got.data[0].embedding) == tiny_embedder.dimension
        np.testing.assert_allclose(got.data[0].embedding, expected, atol=1e-5)
        assert (got.usage.prompt_tokens, got.usage.total_tokens) == (tokens, tokens)


def test_a_list_keeps_its_order_and_sums_the_tokens(client, model, tiny_embedder):
    got = client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    assert [d.index for d in got.data] == [0, 1, 2]
    for d, text in zip(got.data, TEXTS, strict=True):
        np.testing.assert_allclose(d.embedding, tiny_embedder.embed_documents([text])[0], atol=1e-5)
    assert got.usage.prompt_tokens == got.usage.total_tokens == sum(tiny_embedder.count_tokens_many(TEXTS))


def test_base64_is_little_endian_float32_of_the_float_answer(server, client, model):
    floats = client.embeddings.create(model=model, input=TEXTS, encoding_format="float").data
    raw = _raw(server, {"model": model, "input": TEXTS, "encoding_format": "base64"})
    assert raw.status_code == 200, raw.text
    for d, f in zip(raw.json()["data"], floats, strict=True):
        decoded = np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4")
        assert decoded.tolist() == np.asarray(f.embedding, dtype=np.float32).tolist()
    # the client's default: it asks for base64 and decodes it itself
    default = client.embeddings.create(model=model, input=TEXTS)
    assert [d.embedding for d in default.data] == [np.float32(f.embedding).tolist() for f in floats]


def test_input_type_query_gives_the_query_embedding(client, model, tiny_embedder):
    got = client.embeddings.create(model=model, input=TEXTS[1], encoding_format="float",
                                   extra_body={"input_type": "query"})
    np.testing.assert_allclose(got.data[0].embedding, tiny_embedder.embed_query(TEXTS[1]), atol=1e-5)


def test_dimensions_equal_to_the_models_are_accepted_others_refused(server, client, model, tiny_embedder):
    dim = tiny_embedder.dimension
    assert len(client.embeddings.create(model=model, input="Test", dimensions=dim).data[0].embedding) == dim
    assert_openai_error(_raw(server, {"model": model, "input": "Test", "dimensions": 3}), 400, "invalid",
                        f"gives {dim}-dimensional", "dimensions")


def test_client_errors_are_openais(client, model):
    with pytest.raises(openai.NotFoundError) as wrong_model:
        client.embeddings.create(model="text-embedding-3-small", input="Test")
    assert wrong_model.value.code == "model_not_found" and wrong_model.value.param == "model"
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        client.embeddings.create(model=model, input="")
    with pytest.raises(openai.BadRequestError, match="must not be empty") as empty_in_list:
        client.embeddings.create(model=model, input=["Test", "  "])
    assert empty_in_list.value.param == "input" and "input[1]" in empty_in_list.value.message
    with pytest.raises(openai.BadRequestError, match=r"input\[0\]: \d+ tokens, over the model's limit of 512"):
        client.embeddings.create(model=model, input="Arbeitszeit " * 2000)
    wrong_key = openai.OpenAI(base_url=client.base_url, api_key="falsch", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as unauthorized:
        wrong_key.embeddings.create(model=model, input="Test")
    assert unauthorized.value.code == "invalid_api_key" and unauthorized.value.status_code == 401


@pytest.mark.parametrize(("body", "status", "code", "match", "param"), [
    (b"kein json", 400, "invalid", "JSON", None),
    (b"[1, 2]", 400, "invalid", "body", None),
    ({"input": "Test"}, 400, "invalid", "model", None),
    ({"model": "M", "input": [1, 2, 3]}, 400, "invalid", "token-id arrays", "input"),
    ({"model": "M", "input": [[1, 2], [3]]}, 400, "invalid", "token-id arrays", "input"),
    ({"model": "M", "input": []}, 400, "invalid", "non-empty list", "input"),
    ({"model": "M", "input": 42}, 400, "invalid", "a string", "input"),
    ({"model": "M", "input": {"text": "x"}}, 400, "invalid", "a string", "input"),
    ({"model": "M", "input": ["a", None]}, 400, "invalid", "input[1]: must be a string", "input"),
    ({"model": "M", "input": ["a"] * (MAX_INPUTS + 1)}, 400, "invalid", f"more than the {MAX_INPUTS}", "input"),
    ({"model": "M", "input": "x", "encoding_format": "int8"}, 400, "invalid", "encoding_format", None),
    ({"model": "M", "input": "x", "dimensions": "384"}, 400, "invalid", "dimensions", None),
    ({"model": "M", "input": "x", "temperature": 1}, 400, "invalid", "temperature", None),
    ({"model": ["M"], "input": "x"}, 400, "invalid", "model", None),
])
def test_hostile_bodies_are_4xx_in_openais_shape(server, model, body, status, code, match, param):
    if isinstance(body, dict) and body.get("model") == "M":
        body = {**body, "model": model}
    assert_openai_error(_raw(server, body), status, code, match, param)


def test_keys_are_refused_in_openais_shape(server, model):
    assert_openai_error(_raw(server, {"model": model, "input": "x"}, key=None), 401, "invalid_api_key", "missing")
    assert_openai_error(_raw(server, {"model": model, "input": "x"}, key="falsch"), 401, "invalid_api_key",
                        "invalid API key")
    over = _raw(server, {"model": model, "input": "x" * (2 << 20)})
    assert_openai_error(over, 413, "too_large", "limit")
