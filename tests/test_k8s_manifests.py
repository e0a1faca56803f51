"""deploy/k8s cannot be applied here (no cluster): parse every manifest and check it against the Kubernetes
OpenAPI models of the official `kubernetes` client, and against what the project really has.

- Schema: each object is deserialized into its model class (V1Deployment, V1Job, ...; wrong types and missing
  required fields fail there) and serialized back; the client drops keys it does not know, so a key of the
  input that does not come back is a typo or a field this API version lacks.
- The project: images the compose files build, the port the service listens on, GERMAN_RAG_* names that are
  settings, CLI arguments the real argparse parser accepts (with `$(JOB_COMPLETION_INDEX)` expanded for every
  index), probe paths the service serves without a key, Secrets the example and the documented commands
  define, and Helm values keys that Qdrant's chart has.

Each check returns its problems, so the negative tests below feed it a broken copy and expect it to complain.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from tests.conftest import ROOT
from tests.support.k8s_checks import (
    EXAMPLE_SECRETS,
    INDEX_VAR,
    K8S,
    KUSTOMIZATION,
    VALUES,
    all_problems,
    config_maps,
    container_env,
    containers,
    documented_secrets,
    documents,
    example_secrets,
    helm_problems,
    helm_values,
    manifest_files,
    of_kind,
    secret_refs,
    service_port,
    settings_env_names,
)


# -- the manifests as shipped ------------------------------------------------------------------------------
def test_every_manifest_is_valid_and_refers_only_to_what_the_project_has():
    docs = documents()
    assert {d["kind"] for _, d in docs} >= {"Deployment", "Service", "Job", "CronJob", "ConfigMap",
                                            "PersistentVolumeClaim", "Secret"}
    assert all_problems(docs) == []


def test_kustomization_lists_every_manifest_but_the_example_secrets():
    kustomization = yaml.safe_load((K8S / KUSTOMIZATION).read_text())
    assert kustomization["kind"] == "Kustomization"
    assert set(kustomization) <= {"apiVersion", "kind", "resources", "images", "namespace", "labels"}
    listed = set(kustomization["resources"])
    assert listed == {p.name for p in manifest_files()} - {EXAMPLE_SECRETS}
    assert not set(p.name for p in K8S.iterdir()) - listed - {EXAMPLE_SECRETS, VALUES, KUSTOMIZATION}


def test_service_probes_listen_where_the_service_does():
    (deployment,) = of_kind("Deployment")
    (c,) = deployment["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["serve"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert [p["containerPort"] for p in c["ports"]] == [service_port()]
    (service,) = of_kind("Service")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= \
        deployment["spec"]["template"]["metadata"]["labels"].items()


def test_ingest_job_shards_by_completion_index():
    (job,) = of_kind("Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and 1 <= spec["parallelism"] <= spec["completions"]
    (c,) = spec["template"]["spec"]["containers"]
    assert c["args"][0] == "ingest" and "--bulk" in c["args"]
    assert f"$({INDEX_VAR})/{spec['completions']}" in c["args"]
    (cron,) = of_kind("CronJob")
    assert cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "sync"
    # sources are paths: the Job and the sync must see the documents at the same place
    mounts = {(m["name"], m["mountPath"]) for d in (job, cron) for c in containers(d) for m in c["volumeMounts"]}
    assert len({path for name, path in mounts if name == "documents"}) == 1


def test_configmap_settings_validate(monkeypatch, tmp_path):
    """The environment the containers get is a valid configuration (types, ranges, the URL's form)."""
    from pipelines.config import load_settings

    monkeypatch.chdir(tmp_path)
    for name in settings_env_names():
        monkeypatch.delenv(name, raising=False)
    for c in (c for d in (*of_kind("Deployment"), *of_kind("Job"), *of_kind("CronJob")) for c in containers(d)):
        env = container_env(c, config_maps())
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value if isinstance(value, str) else "secret-from-kubernetes")
            settings = load_settings()
        assert settings.qdrant_url == "http://qdrant:6333" and settings.qdrant_api_key is not None
        assert settings.embed_threads > 0, "0 means every core of the node, not the container's share"


def test_secrets_are_defined_by_the_example_and_the_documented_commands():
    used = set().union(*(secret_refs(d) for _, d in documents()), secret_refs(helm_values()))
    assert used, "the manifests read their keys from Secrets"
    assert used <= example_secrets()
    assert used <= documented_secrets()
    for doc in yaml.safe_load_all((K8S / EXAMPLE_SECRETS).read_text()):
        assert all(v.startswith("CHANGE-ME") for v in doc["stringData"].values()), "placeholders only"


def test_helm_values_use_only_keys_of_qdrants_chart():
    values = helm_values()
    assert helm_problems(values) == []
    assert values["replicaCount"] >= 2 and values["config"]["cluster"]["enabled"] is True
    compose_qdrant = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["qdrant"]["image"]
    assert compose_qdrant.endswith(":" + values["image"]["tag"]), "the same Qdrant version as compose"
    cm = config_maps()["german-rag-config"]
    assert int(cm["GERMAN_RAG_REPLICATION_FACTOR"]) <= values["replicaCount"]
    assert int(cm["GERMAN_RAG_WRITE_CONSISTENCY_FACTOR"]) <= int(cm["GERMAN_RAG_REPLICATION_FACTOR"])


# -- the checks catch broken manifests -------------------------------------------------------------------
def broken(kind: str, change) -> list[tuple[str, dict]]:
    docs = copy.deepcopy(documents())
    (doc,) = [d for _, d in docs if d["kind"] == kind]
    change(doc)
    return docs


def first_container(doc: dict) -> dict:
    return next(containers(doc))


@pytest.mark.parametrize(("kind", "change", "expected"), [
    ("Deployment", lambda d: first_container(d).update(imagePullPolcy="Always"), "imagePullPolcy: unknown field"),
    ("Job", lambda d: d["spec"].update(completionsMode="Indexed"), "completionsMode: unknown field"),
    ("Deployment", lambda d: d["spec"].update(replicas="zwei"), "does not parse as V1Deployment"),
    ("Deployment", lambda d: first_container(d)["env"].append({"name": "GERMAN_RAG_NO_SUCH", "value": "1"}),
     "GERMAN_RAG_NO_SUCH is no setting"),
    ("ConfigMap", lambda d: d["data"].update(GERMAN_RAG_QDRANT_ADDRESS="x"), "GERMAN_RAG_QDRANT_ADDRESS is no setting"),
    ("Job", lambda d: first_container(d)["args"].append("--no-such-flag"), "refused by the CLI parser"),
    ("CronJob", lambda d: first_container(d).update(args=["synch", "/data/docs"]), "refused by the CLI parser"),
    ("Job", lambda d: d["spec"].update(completions=8), "must be 0/8"),
    ("CronJob", lambda d: first_container(d)["args"].extend(["--meta", "run=$(RUN_ID)"]), "refer to ['RUN_ID']"),
    ("Deployment", lambda d: first_container(d).update(image="german-rag:9.9.9"), "is not one the project builds"),
    ("Deployment", lambda d: first_container(d)["ports"][0].update(containerPort=8080), "is not the service's port"),
    ("Deployment", lambda d: first_container(d)["readinessProbe"]["httpGet"].update(path="/ready"), "asks /ready"),
    ("Service", lambda d: d["spec"]["ports"][0].update(targetPort=8080), "targetPort 8080"),
])
def test_a_broken_manifest_is_reported(kind, change, expected):
    problems = all_problems(broken(kind, change))
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(("change", "expected"), [
    (lambda v: v.update(replicas=3), "replicas is not a key"),
    (lambda v: v["persistence"].update(storageClass="ssd"), "persistence.storageClass is not a key"),
    (lambda v: v["resources"].update(limit={"memory": "1Gi"}), "resources.limit: unknown field"),
    (lambda v: v["config"].update(clustr={"enabled": True}), "config.clustr is not a section"),
    (lambda v: v.update(apiKey={"secretKeyRef": {"name": "a", "key": "b"}}), "apiKey must be"),
])
def test_broken_helm_values_are_reported(change, expected):
    values = copy.deepcopy(helm_values())
    change(values)
    assert any(expected in p for p in helm_problems(values)), helm_problems(values)


def test_a_secret_nobody_defines_is_reported():
    docs = broken("Deployment", lambda d: first_container(d)["env"].append(
        {"name": "GERMAN_RAG_QDRANT_API_KEY", "valueFrom": {"secretKeyRef": {"name": "qdrant-key", "key": "k"}}}))
    used = set().union(*(secret_refs(d) for _, d in docs))
    assert ("qdrant-key", "k") in used - example_secrets()
