"""docker-compose.yml cannot run here (no Docker engine): parse it and check what users rely on."""

import re

import yaml

from tests.conftest import ROOT


def load():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_qdrant_service_is_pinned_with_volume_key_and_healthcheck():
    compose = load()
    qdrant = compose["services"]["qdrant"]
    assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", qdrant["image"]), "image must be pinned to a release"
    assert "127.0.0.1:6333:6333" in qdrant["ports"]
    volume = qdrant["volumes"][0].split(":")
    assert volume[1] == "/qdrant/storage" and volume[0] in compose["volumes"]
    assert qdrant["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")
    check = qdrant["healthcheck"]
    assert check["test"][0] == "CMD-SHELL" and "/readyz" in check["test"][1]
    assert {"interval", "timeout", "retries"} <= set(check)


def test_cli_url_matches_the_published_port():
    from pipelines.config import load_settings

    settings = load_settings(qdrant_url="http://127.0.0.1:6333/")
    assert settings.qdrant_url == "http://127.0.0.1:6333"
    published = load()["services"]["qdrant"]["ports"][0].split(":")[1]
    assert settings.qdrant_url.endswith(":" + published)


# -- the service, its image and the cluster file ---------------------------------------------------------
def load_cluster():
    return yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())


def settings_env_names() -> set[str]:
    from pipelines.config import Settings

    return {f"GERMAN_RAG_{name.upper()}" for name in Settings.model_fields}


def check_service(service: dict, qdrant_host: str) -> None:
    """What both compose files promise about the german-rag service."""
    env = service["environment"]
    unknown = {k for k in env if k.startswith("GERMAN_RAG_")} - settings_env_names()
    assert not unknown, f"environment names no setting: {unknown}"
    assert env["GERMAN_RAG_QDRANT_URL"] == f"http://{qdrant_host}:6333"
    assert env["GERMAN_RAG_QDRANT_API_KEY"].startswith("${QDRANT_API_KEY")
    assert {"GERMAN_RAG_READ_KEYS", "GERMAN_RAG_WRITE_KEYS"} <= set(env)
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert service["read_only"] is True and any(t.startswith("/tmp") for t in service["tmpfs"])
    assert not service["user"].startswith("0") and service["cap_drop"] == ["ALL"]
    assert "model_cache:/models" in service["volumes"]
    assert service["build"]["args"]["TORCH_INDEX_URL"].endswith("whl/cpu}")
    assert "/readyz" in service["healthcheck"]["test"][-1]
    assert service["depends_on"][qdrant_host]["condition"] == "service_healthy"


def test_service_is_wired_by_environment():
    compose = load()
    check_service(compose["services"]["german-rag"], "qdrant")
    assert "model_cache" in compose["volumes"]


def test_dockerfile_pins_cpu_torch_like_the_makefile_and_runs_unprivileged():
    docker = (ROOT / "Dockerfile").read_text()
    make_pin = re.search(r"^TORCH \?= torch==(\S+)$", (ROOT / "Makefile").read_text(), re.M).group(1)
    assert f"ARG TORCH_VERSION={make_pin}" in docker
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu" in docker
    assert re.search(r"^USER 10001:10001$", docker, re.M)
    assert 'VOLUME ["/models"]' in docker and "HF_HOME=/models" in docker
    assert docker.rstrip().endswith('CMD ["serve"]')
    compose_args = load()["services"]["german-rag"]["build"]["args"]
    assert compose_args["TORCH_VERSION"] == make_pin
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "tests"} <= set(ignored)


def test_cluster_has_three_bootstrapped_nodes_and_valid_collection_settings():
    from pipelines.config import load_settings

    compose = load_cluster()
    nodes = {name: s for name, s in compose["services"].items() if name.startswith("qdrant-")}
    assert len(nodes) == 3
    first_uri = nodes["qdrant-1"]["command"][nodes["qdrant-1"]["command"].index("--uri") + 1]
    for name, node in nodes.items():
        assert re.fullmatch(r"qdrant/qdrant:v\d+\.\d+\.\d+", node["image"])
        assert node["environment"]["QDRANT__CLUSTER__ENABLED"] == "true"
        assert node["environment"]["QDRANT__SERVICE__API_KEY"].startswith("${QDRANT_API_KEY")
        assert node["volumes"][0].split(":")[0] in compose["volumes"]
        cmd = node["command"]
        assert cmd[cmd.index("--uri") + 1] == f"http://{name}:6335"
        if name != "qdrant-1":
            assert cmd[cmd.index("--bootstrap") + 1] == first_uri
    assert len({n["volumes"][0] for n in nodes.values()}) == 3, "each node needs its own storage"
    service = compose["services"]["german-rag"]
    check_service(service, "qdrant-1")
    env = service["environment"]

    def default(name: str) -> int:
        return int(re.fullmatch(r"\$\{\w+:-(\d+)\}", env[name]).group(1))

    settings = load_settings(shard_number=default("GERMAN_RAG_SHARD_NUMBER"),
                             replication_factor=default("GERMAN_RAG_REPLICATION_FACTOR"),
                             write_consistency_factor=default("GERMAN_RAG_WRITE_CONSISTENCY_FACTOR"))
    assert settings.replication_factor <= len(nodes) and settings.shard_number >= len(nodes)
    assert settings.write_consistency_factor <= settings.replication_factor
