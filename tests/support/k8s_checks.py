"""The checks behind tests/test_k8s_manifests.py: deploy/k8s parsed into the official `kubernetes` client's
OpenAPI models and compared with what the project has (images, ports, settings, CLI, Secrets, Helm chart keys).
Each check returns its problems, so a test can feed it a broken copy and expect it to complain."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
