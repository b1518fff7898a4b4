"""deploy/kubernetes/: every overlay rendered by kustomize (`kubectl kustomize`, offline)
and validated against the Kubernetes API schemas of 1.27 to 1.37 (kubernetes-validate,
which bundles them), then read for what a rollout relies on: the drain fits the grace
period, probes hit the right endpoints, pods run locked down, Services, budget, autoscaler
and network policy select the gateway's pods and ports, and the issuers file it ships
loads. No cluster runs here (docs/OPERATIONS.md says what that leaves untested)."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.app.issuers import load_issuers
from gateway.core.rights import evaluate, rights_of

ROOT = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes"
OVERLAYS = ("base", "overlays/staging", "overlays/production")
VERSIONS = [f"1.{minor}.0" for minor in range(27, 38)]


def render(overlay: str) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl is needed to render the kustomizations (scripts/test checks)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / overlay)], capture_output=True, text=True, check=True
    )
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def objects(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """An overlay's objects by `Kind/name`."""
    return {f"{o['kind']}/{o['metadata']['name']}": o for o in render(request.param)}


def examples() -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "examples/publisher.yaml").read_text()) if d]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_schemas(
    objects: dict[str, dict[str, Any]], version: str
) -> None:
    for obj in [*objects.values(), *examples()]:
        kubernetes_validate.validate(obj, version, strict=True)


def test_a_schema_error_is_caught() -> None:
    """The validator refuses what the API server would (so the test above can fail)."""
    [deployment] = [o for o in render("base") if o["kind"] == "Deployment"]
    deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "25"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def pod(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec: dict[str, Any] = objects["Deployment/logs-gateway"]["spec"]["template"]["spec"]
    return spec


def container(objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    [c] = pod(objects)["containers"]
    return dict(c)


def test_the_drain_fits_the_termination_grace_period(objects: dict[str, dict[str, Any]]) -> None:
    c = container(objects)
    config = objects["ConfigMap/logs-gateway"]["data"]
    grace = float(config["LOGS_GATEWAY_GRACE_SECONDS"])
    assert c["lifecycle"]["preStop"]["exec"]["command"][0] == "sleep"
    pre_stop = float(c["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod(objects)["terminationGracePeriodSeconds"] >= pre_stop + grace + 5
    liveness = c["livenessProbe"]
    # A drain never looks like a dead pod: the liveness probe outlasts it.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > grace
    strategy = objects["Deployment/logs-gateway"]["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0


def test_probes_use_health_ready_and_grpc_health(objects: dict[str, dict[str, Any]]) -> None:
    c = container(objects)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert c["livenessProbe"]["grpc"]["port"] == ports["grpc"] == 50051
    assert ports["http"] == 3002


def test_pods_run_locked_down(objects: dict[str, dict[str, Any]]) -> None:
    spec, c = pod(objects), container(objects)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"])
    assert "memory" in c["resources"]["limits"]


def test_services_budget_autoscaler_and_policy_select_the_gateway(
    objects: dict[str, dict[str, Any]],
) -> None:
    labels = objects["Deployment/logs-gateway"]["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"] for p in container(objects)["ports"]}

    def selects(selector: dict[str, str]) -> bool:
        return bool(selector) and selector.items() <= labels.items()

    services = [o for key, o in objects.items() if key.startswith("Service/")]
    assert {s["metadata"]["name"] for s in services} == {"logs-gateway", "logs-gateway-grpc"}
    for service in services:
        assert selects(service["spec"]["selector"])
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports
    assert selects(objects["PodDisruptionBudget/logs-gateway"]["spec"]["selector"]["matchLabels"])
    hpa = objects["HorizontalPodAutoscaler/logs-gateway"]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "logs-gateway"
    assert hpa["minReplicas"] >= 2  # a drain or a node loss leaves one pod serving
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"
    policy = objects["NetworkPolicy/logs-gateway"]["spec"]
    assert selects(policy["podSelector"]["matchLabels"])
    assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == ports
    peers = [peer for rule in policy["egress"] for peer in rule.get("to", ())]
    assert {"k8s-app": "kube-dns"} in [p.get("podSelector", {}).get("matchLabels") for p in peers]
    redis = {"app.kubernetes.io/name": "redis"}
    assert redis in [p.get("podSelector", {}).get("matchLabels") for p in peers]


def test_the_shipped_issuers_file_loads_and_grants_the_example_publisher(
    objects: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    text = objects["ConfigMap/logs-gateway"]["data"]["issuers.toml"]
    mounts = {m["name"]: m["mountPath"] for m in container(objects)["volumeMounts"]}
    for entry in tomllib.loads(text)["issuers"]:
        for key in ("ca_file", "token_file"):
            assert entry[key].startswith(mounts["kube-api"] + "/")
            text = text.replace(entry[key], str(tmp_path / Path(entry[key]).name))
            (tmp_path / Path(entry[key]).name).write_text("x")
    path = tmp_path / "issuers.toml"
    path.write_text(text.replace('ca_file = "', '# ca_file = "'))  # "x" is no certificate
    [issuer] = load_issuers(path).issuers
    account = next(o for o in examples() if o["kind"] == "ServiceAccount")["metadata"]
    [token] = next(o for o in examples() if o["kind"] == "Deployment")["spec"]["template"]["spec"][
        "volumes"
    ]
    audience = token["projected"]["sources"][0]["serviceAccountToken"]["audience"]
    assert audience in issuer.audiences
    sub = f"system:serviceaccount:{account['namespace']}:{account['name']}"
    rights = rights_of(evaluate(issuer.rules, {"sub": sub}))
    assert [p.text for p in rights.publish] == ["logs:etl:>"]
