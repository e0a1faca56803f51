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
