"""deploy/k8s: valid against the Kubernetes API schemas, consistent with each other and the image.

The schemas come inside the kubernetes-validate wheel, so nothing is downloaded. Strict mode
rejects unknown fields, which catches a misspelt or misplaced key the API would drop silently.
"""

import copy
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import all_versions

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "k8s"
KUSTOMIZATION = K8S / "kustomization.yaml"
MANIFESTS = sorted(path for path in K8S.glob("*.yaml") if path != KUSTOMIZATION)
# The oldest and the newest API the validator ships: the manifests should apply to both.
VERSIONS = (all_versions()[0], all_versions()[-1])


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


RESOURCES = [doc for path in MANIFESTS for doc in load(path)]


def one(kind: str) -> dict[str, Any]:
    (found,) = [doc for doc in RESOURCES if doc["kind"] == kind]
    return found


def container() -> dict[str, Any]:
    (only,) = one("Deployment")["spec"]["template"]["spec"]["containers"]
    return only


def dockerfile(instruction: str) -> str:
    """The argument of the last `instruction` line of the Dockerfile (the final stage's)."""
    lines = re.findall(rf"^{instruction}\s+(.+)$", (REPO / "Dockerfile").read_text(), re.M)
    return lines[-1].strip()


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("resource", RESOURCES, ids=lambda doc: doc["kind"])
def test_manifest_matches_the_api_schema(resource: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(resource, version, strict=True)


@pytest.mark.parametrize(
    "path, value",
    [(("spec", "replicas"), "two"), (("spec", "template", "spec", "restartPolicyy"), "Always")],
    ids=["wrong-type", "unknown-field"],
)
def test_schema_check_rejects_a_broken_manifest(path: tuple[str, ...], value: str) -> None:
    broken = copy.deepcopy(one("Deployment"))
    *parents, key = path
    node = broken
    for parent in parents:
        node = node[parent]
    node[key] = value
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = yaml.safe_load(KUSTOMIZATION.read_text())["resources"]
    assert sorted(listed) == [path.name for path in MANIFESTS]


def test_probes_ask_the_service_on_the_port_the_image_exposes() -> None:
    spec = container()
    (port,) = spec["ports"]
    assert port["containerPort"] == int(dockerfile("EXPOSE"))
    assert spec["readinessProbe"]["httpGet"] == {"path": "/ready", "port": port["name"]}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/health", "port": port["name"]}


def test_pods_have_cpu_and_memory_requests_and_limits() -> None:
    resources = container()["resources"]
    for kind in ("requests", "limits"):
        assert set(resources[kind]) == {"cpu", "memory"}


def test_pods_run_as_the_images_non_root_user() -> None:
    pod = one("Deployment")["spec"]["template"]["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert f"{pod['runAsUser']}:{pod['runAsGroup']}" == dockerfile("USER")


def test_service_and_budget_select_the_deployments_pods() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = one("Service")["spec"]["ports"]
    assert port["targetPort"] == container()["ports"][0]["name"]


def test_pods_share_the_postgresql_feedback_store_named_by_the_secret() -> None:
    env = {var["name"]: var for var in container()["env"]}
    reference = env["LENET5_FEEDBACK_URL"]["valueFrom"]["secretKeyRef"]
    assert "value" not in env["LENET5_FEEDBACK_URL"]  # never in the Deployment in plain text
    secret = one("Secret")
    assert reference["name"] == secret["metadata"]["name"]
    url = secret["stringData"][reference["key"]]
    assert url.startswith("postgresql://")
    assert "LENET5_FEEDBACK_DB" not in env  # no per-pod SQLite store


def test_autoscaler_scales_the_deployment_on_cpu() -> None:
    hpa = one("HorizontalPodAutoscaler")["spec"]
    deployment = one("Deployment")
    assert hpa["scaleTargetRef"] == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] >= 2  # one pod lost never takes the service down
    assert [metric["resource"]["name"] for metric in hpa["metrics"]] == ["cpu"]


def test_ingress_routes_to_the_service_with_the_body_limit_of_a_batch() -> None:
    from app.settings import Settings

    ingress = one("Ingress")
    (rule,) = ingress["spec"]["rules"]
    (path,) = rule["http"]["paths"]
    backend = path["backend"]["service"]
    service = one("Service")
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert int(size.removesuffix("m")) * 2**20 == Settings().max_batch_bytes
