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
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient  # the dev extra: a missing client fails these tests, never skips them

from tests.conftest import ROOT

K8S = ROOT / "deploy" / "k8s"
VALUES = "qdrant-values.yaml"  # Helm values, not a manifest
KUSTOMIZATION = "kustomization.yaml"
EXAMPLE_SECRETS = "secrets.example.yaml"  # placeholders: validated, never applied
DOC = ROOT / "docs" / "deploy-k8s.md"
# (apiVersion, kind) -> the client's model class: a kind not listed here is a problem, not a skipped file
MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("batch/v1", "Job"): "V1Job",
    ("batch/v1", "CronJob"): "V1CronJob",
}
# Set by Kubernetes itself in the containers of an Indexed Job (batch/v1, completionMode: Indexed).
INDEX_VAR = "JOB_COMPLETION_INDEX"
VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")

# Keys of Qdrant's official chart that qdrant-values.yaml may use, copied from charts/qdrant/values.yaml of
# github.com/qdrant/qdrant-helm (commit c8ae2d1d8cfe50adca26faaccb9b477c2917f15d; apiKey's valueFrom form is
# documented there and read by templates/_helpers.tpl). None: a free-form subtree checked separately.
CHART_KEYS: dict[str, Any] = {
    "replicaCount": None,
    "image": {"repository", "pullPolicy", "tag", "useUnprivilegedImage"},
    "imagePullSecrets": None, "nameOverride": None, "fullnameOverride": None, "args": None, "env": None,
    "service": None, "ingress": None,
    "livenessProbe": None, "readinessProbe": None, "startupProbe": None,
    "additionalLabels": None, "podAnnotations": None, "podLabels": None,
    "resources": "V1ResourceRequirements",
    "containerSecurityContext": "V1SecurityContext", "podSecurityContext": "V1PodSecurityContext",
    "lifecycle": "V1Lifecycle", "updateVolumeFsOwnership": None,
    "nodeSelector": None, "tolerations": None, "affinity": "V1Affinity", "topologySpreadConstraints": None,
    "persistence": {"accessModes", "size", "annotations", "storageVolumeName", "storageSubPath",
                    "storageClassName"},
    "snapshotPersistence": None, "snapshotRestoration": None,
    "config": None, "sidecarContainers": None, "metrics": None, "serviceAccount": None,
    "priorityClassName": None, "shareProcessNamespace": None, "podManagementPolicy": None,
    "podDisruptionBudget": {"enabled", "maxUnavailable", "minAvailable", "unhealthyPodEvictionPolicy"},
    "apiKey": None, "readOnlyApiKey": None, "additionalVolumes": None, "additionalVolumeMounts": None,
}
# Top-level sections of Qdrant's own configuration (config/config.yaml of qdrant/qdrant), which `config` is.
QDRANT_CONFIG_SECTIONS = {"log_level", "storage", "service", "cluster", "telemetry_disabled", "tls", "gpu"}


# -- loading -----------------------------------------------------------------------------------------------
def manifest_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name not in (VALUES, KUSTOMIZATION))


def documents() -> list[tuple[str, dict]]:
    """(file name, object) for every object in every manifest."""
    out = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc is not None:
                out.append((path.name, doc))
    return out


def of_kind(kind: str) -> list[dict]:
    return [doc for _, doc in documents() if doc.get("kind") == kind]


def pod_spec(doc: dict) -> dict | None:
    spec = doc.get("spec", {})
    if doc["kind"] in ("Deployment", "Job"):
        return spec["template"]["spec"]
    if doc["kind"] == "CronJob":
        return spec["jobTemplate"]["spec"]["template"]["spec"]
    return None


def job_spec(doc: dict) -> dict | None:
    if doc["kind"] == "Job":
        return doc["spec"]
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]
    return None


def containers(doc: dict) -> Iterator[dict]:
    spec = pod_spec(doc) or {}
    yield from spec.get("initContainers", [])
    yield from spec.get("containers", [])


def compose_service_images() -> set[str]:
    """The image tags the project's compose files build (services with a `build` section)."""
    images = set()
    for name in ("docker-compose.yml", "docker-compose.cluster.yml"):
        for service in yaml.safe_load((ROOT / name).read_text())["services"].values():
            if "build" in service:
                images.add(service["image"])
    return images


def settings_env_names() -> set[str]:
    from pipelines.config import Settings

    prefix = Settings.model_config["env_prefix"]
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


# -- checks: each returns the problems it found ----------------------------------------------------------
def schema_problems(doc: dict) -> list[str]:
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key not in MODELS:
        return [f"{key}: not a kind these manifests are checked for ({sorted(MODELS)})"]
    return model_problems(doc, MODELS[key], f"{doc['kind']}/{doc.get('metadata', {}).get('name')}")


def model_problems(data: Any, model: str, where: str) -> list[str]:
    """`data` deserialized into the client's `model` and serialized back: errors, and keys that got lost."""
    api = ApiClient()
    try:
        obj = api.deserialize(json.dumps(data), model, "application/json")
    except Exception as exc:  # pydantic's ValidationError or the client's ValueError: a wrong type or value
        return [f"{where}: does not parse as {model}: {exc}"]
    return [f"{where}{p}" for p in lost(data, api.sanitize_for_serialization(obj), "")]


def lost(given: Any, back: Any, path: str) -> Iterator[str]:
    if isinstance(given, dict):
        for k, v in given.items():
            if not isinstance(back, dict) or k not in back:
                yield f"{path}.{k}: unknown field"
            else:
                yield from lost(v, back[k], f"{path}.{k}")
    elif isinstance(given, list):
        if not isinstance(back, list) or len(back) != len(given):
            yield f"{path}: list changed in the round trip"
            return
        for i, (a, b) in enumerate(zip(given, back, strict=True)):
            yield from lost(a, b, f"{path}[{i}]")
    elif given != back:
        yield f"{path}: {given!r} came back as {back!r}"


def image_problems(doc: dict) -> list[str]:
    built = compose_service_images()
    return [f"{c['name']}: image {c.get('image')!r} is not one the project builds ({sorted(built)})"
            for c in containers(doc) if c.get("image") not in built]


def config_maps() -> dict[str, dict]:
    return {d["metadata"]["name"]: d.get("data", {}) for d in of_kind("ConfigMap")}


def container_env(container: dict, maps: dict[str, dict]) -> dict[str, Any]:
    """Name -> value (or valueFrom) of a container's environment, ConfigMaps from envFrom included."""
    env: dict[str, Any] = {}
    for source in container.get("envFrom", []):
        ref = source.get("configMapRef", {}).get("name")
        if ref is not None:
            env.update(maps.get(ref, {}))
    for var in container.get("env", []):
        env[var["name"]] = var.get("value", var.get("valueFrom"))
    return env


def env_problems(doc: dict, maps: dict[str, dict]) -> list[str]:
    known = settings_env_names()
    problems = []
    if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("german-rag"):
        problems += [f"ConfigMap {doc['metadata']['name']}: {k} is no setting (pipelines/config.py)"
                     for k in doc.get("data", {}) if k not in known]
    for c in containers(doc):
        for source in c.get("envFrom", []):
            ref = source.get("configMapRef", {}).get("name")
            if ref is not None and ref not in maps:
                problems.append(f"{c['name']}: envFrom names ConfigMap {ref!r}, which no manifest defines")
        problems += [f"{c['name']}: env {v['name']} is no setting (pipelines/config.py)"
                     for v in c.get("env", []) if v["name"] not in known]
    return problems


def argv_for_index(container: dict, env: dict[str, Any], index: int | None) -> tuple[list[str], list[str]]:
    """The container's arguments with `$(VAR)` expanded as the kubelet does, and the references it cannot expand."""
    values = {k: v for k, v in env.items() if isinstance(v, str)}
    if index is not None:
        values[INDEX_VAR] = str(index)
    unknown: list[str] = []

    def expand(text: str) -> str:
        def one(m: re.Match) -> str:
            if m.group(1) in values:
                return values[m.group(1)]
            unknown.append(m.group(1))
            return m.group(0)

        return VAR_REF.sub(one, text)

    return [expand(str(a)) for a in container.get("args", [])], unknown


def cli_problems(doc: dict, maps: dict[str, dict]) -> list[str]:
    """Arguments of the project's containers parse with the real CLI parser, for every completion index."""
    from pipelines.cli.main import build_parser
    from pipelines.indexing.discover import parse_shard

    job = job_spec(doc) or {}
    indexed = job.get("completionMode") == "Indexed"
    indices: list[int | None] = list(range(job.get("completions", 1))) if indexed else [None]
    problems = []
    for c in containers(doc):
        if c.get("image") not in compose_service_images():
            continue
        if "command" in c:
            problems.append(f"{c['name']}: `command` replaces the image's ENTRYPOINT (german-rag); use args")
        env = container_env(c, maps)
        for index in indices:
            argv, unknown = argv_for_index(c, env, index)
            if unknown:
                problems.append(f"{c['name']}: args refer to {sorted(set(unknown))}, set neither in the container's "
                                f"environment nor by Kubernetes" + ("" if indexed else " (no Indexed Job)"))
                break
            try:
                args = build_parser().parse_args(argv)
            except SystemExit:  # argparse printed why on stderr
                problems.append(f"{c['name']}: `german-rag {' '.join(argv)}` is refused by the CLI parser")
                break
            if getattr(args, "shard", None):
                try:
                    shard = parse_shard(args.shard)
                except ValueError as exc:
                    problems.append(f"{c['name']}: {exc}")
                    break
                if not indexed or shard != (index, job["completions"]):
                    problems.append(f"{c['name']}: --shard {args.shard} at completion index {index} must be "
                                    f"{index}/{job.get('completions')} (completions: the N of --shard)")
                    break
    return problems


def service_port() -> int:
    """The port the service listens on: the settings' default, which the Dockerfile's env and EXPOSE repeat."""
    from pipelines.config import Settings

    port = Settings.model_fields["port"].default
    docker = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^EXPOSE {port}$", docker, re.M) and f"GERMAN_RAG_PORT={port}" in docker
    return port


def port_problems(doc: dict) -> list[str]:
    """Container ports, probes and Service target ports of the project's service name the port it listens on,
    and probes ask the paths it answers without a key."""
    from pipelines.service.gate import OPEN_PATHS

    port = service_port()
    problems = []
    for c in containers(doc):
        if c.get("image") not in compose_service_images():
            continue
        named = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        problems += [f"{c['name']}: containerPort {p} is not the service's port {port}"
                     for p in named.values() if p != port]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = c.get(probe, {}).get("httpGet")
            if get is None:
                continue
            target = named.get(get["port"], get["port"])
            if target != port:
                problems.append(f"{c['name']}: {probe} asks port {get['port']!r}, not {port}")
            if get["path"] not in OPEN_PATHS:
                problems.append(f"{c['name']}: {probe} asks {get['path']}, not one of {sorted(OPEN_PATHS)}")
    if doc["kind"] == "Service":
        for p in doc["spec"]["ports"]:
            if p.get("targetPort") not in ("http", port):
                problems.append(f"Service {doc['metadata']['name']}: targetPort {p.get('targetPort')!r} is neither "
                                f"the container port's name (http) nor {port}")
    return problems


def secret_refs(data: Any) -> set[tuple[str, str]]:
    """(name, key) of every secretKeyRef anywhere in `data`."""
    found: set[tuple[str, str]] = set()
    if isinstance(data, dict):
        ref = data.get("secretKeyRef")
        if isinstance(ref, dict):
            found.add((ref.get("name"), ref.get("key")))
        for v in data.values():
            found |= secret_refs(v)
    elif isinstance(data, list):
        for v in data:
            found |= secret_refs(v)
    return found


def example_secrets() -> set[tuple[str, str]]:
    out = set()
    for doc in yaml.safe_load_all((K8S / EXAMPLE_SECRETS).read_text()):
        for key in {**doc.get("data", {}), **doc.get("stringData", {})}:
            out.add((doc["metadata"]["name"], key))
    return out


def documented_secrets() -> set[tuple[str, str]]:
    """(name, key) the `kubectl create secret generic NAME --from-literal=KEY=...` commands in the doc create."""
    text = DOC.read_text(encoding="utf-8").replace("\\\n", " ")
    out = set()
    for m in re.finditer(r"kubectl(?: -n \S+)? create secret generic (\S+)([^\n]*)", text):
        out |= {(m.group(1), key) for key in re.findall(r"--from-literal=([\w.-]+)=", m.group(2))}
    return out


def helm_problems(values: dict) -> list[str]:
    problems = []
    for key, value in values.items():
        if key not in CHART_KEYS:
            problems.append(f"{VALUES}: {key} is not a key of Qdrant's chart")
            continue
        allowed = CHART_KEYS[key]
        if isinstance(allowed, set):
            problems += [f"{VALUES}: {key}.{k} is not a key of Qdrant's chart" for k in value if k not in allowed]
        elif isinstance(allowed, str):
            problems += model_problems(value, allowed, f"{VALUES}: {key}")
    api_key = values.get("apiKey")
    if isinstance(api_key, dict) and (set(api_key) != {"valueFrom"} or set(api_key["valueFrom"]) != {"secretKeyRef"}
                                      or set(api_key["valueFrom"]["secretKeyRef"]) != {"name", "key"}):
        problems.append(f"{VALUES}: apiKey must be false, true, a string or valueFrom.secretKeyRef.{{name,key}}")
    problems += [f"{VALUES}: config.{k} is not a section of Qdrant's configuration"
                 for k in values.get("config", {}) if k not in QDRANT_CONFIG_SECTIONS]
    return problems


def all_problems(docs: list[tuple[str, dict]]) -> list[str]:
    maps = {d["metadata"]["name"]: d.get("data", {}) for _, d in docs if d.get("kind") == "ConfigMap"}
    problems = []
    for name, doc in docs:
        for check in (schema_problems(doc), image_problems(doc), env_problems(doc, maps), cli_problems(doc, maps),
                      port_problems(doc)):
            problems += [f"{name}: {p}" for p in check]
    return problems


def helm_values() -> dict:
    return yaml.safe_load((K8S / VALUES).read_text())


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
