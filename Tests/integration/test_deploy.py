"""Deployment artefacts: Dockerfile lint and runtime contract, Kubernetes and Compose manifests."""
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import requests
import yaml

from conftest import BINARY, ROOT, ServerProcess

DEPLOY = ROOT / "Deploy"
K8S = DEPLOY / "kubernetes"
VENV_BIN = pathlib.Path(sys.executable).parent


def test_hadolint_is_clean():
    r = subprocess.run([str(VENV_BIN / "hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def dockerfile_runtime_packages():
    text = (ROOT / "Dockerfile").read_text()
    runtime = text[text.rindex("FROM "):]
    m = re.search(r"apt-get install -y --no-install-recommends ([^\\&]+)", runtime)
    return set(m.group(1).split())


# What debian:bookworm-slim already holds that a C/Swift binary may link against.
BOOKWORM_SLIM_BASE = {"libc6", "libgcc-s1", "libstdc++6"}


def test_release_binary_needs_only_the_runtime_stage_libraries():
    allowed = BOOKWORM_SLIM_BASE | dockerfile_runtime_packages()
    assert {"libssl3", "zlib1g", "ca-certificates"} <= allowed
    out = subprocess.run(["ldd", BINARY], capture_output=True, text=True, timeout=30).stdout
    libs = [line.split("=>")[1].split()[0] for line in out.splitlines() if "=>" in line and "/" in line.split("=>")[1]]
    assert libs, out
    for lib in libs:
        owner = subprocess.run(["dpkg", "-S", str(pathlib.Path(lib).resolve())], capture_output=True, text=True).stdout
        if not owner:
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True).stdout
        package = owner.split(":")[0]
        assert package in allowed, f"{lib} comes from {package!r}, which the runtime stage does not install"
    assert "libswift" not in out, "the Swift runtime must be linked statically (--static-swift-stdlib)"


def test_binary_starts_with_the_baked_in_config_layout(tmp_path):
    # Reproduce the image layout: /app/Deploy/config.json with ../models/digits-mlp and the
    # time-series model's manifest and weights beside it.
    app = tmp_path / "app"
    (app / "Deploy").mkdir(parents=True)
    shutil.copytree(ROOT / "models" / "digits-mlp", app / "models" / "digits-mlp")
    (app / "models" / "timeseries").mkdir()
    for name in ["model.json", "model.safetensors"]:
        shutil.copy(ROOT / "models" / "timeseries" / name, app / "models" / "timeseries" / name)
    shutil.copy(DEPLOY / "config.json", app / "Deploy" / "config.json")
    s = ServerProcess(app / "Deploy" / "config.json")
    try:
        assert requests.get(f"http://{s.authority}/v2/health/ready", timeout=5).status_code == 200
        assert requests.get(f"http://{s.authority}/v2/models/timeseries/ready", timeout=5).status_code == 200
        # compat.tei.model is minilm, whose weights the image does not bake in: TEI's routes say so
        r = requests.post(f"http://{s.authority}/embed", json={"inputs": "hello"}, timeout=5)
        assert r.status_code == 503 and r.json()["error_type"] and "'minilm' is not loaded" in r.json()["error"], r.text
        probe = subprocess.run([BINARY, "probe", "--url", f"http://127.0.0.1:{s.port}/v2/health/live"],
                               capture_output=True, text=True, timeout=10)
        assert probe.returncode == 0, probe.stdout + probe.stderr
    finally:
        assert s.stop() == 0
    probe = subprocess.run([BINARY, "probe", "--url", f"http://127.0.0.1:{s.port}/v2/health/live", "--timeout", "1"],
                           capture_output=True, text=True, timeout=10)
    assert probe.returncode != 0


def test_shipped_config_serves_the_tei_routes_with_dense_minilm(tmp_path):
    """Deploy/config.json has six MiniLM endpoints, so TEI's routes need compat.tei.model: it names
    the dense `minilm`. Started with the shipped compat section and the digits and minilm endpoints
    (the other MiniLM variants compress at load, which takes long and changes nothing here)."""
    shipped = json.loads((DEPLOY / "config.json").read_text())
    assert shipped["compat"] == {"tei": {"model": "minilm"}}
    minilm = next(e for e in shipped["endpoints"] if e["name"] == "minilm")
    assert "compression" not in minilm, "the TEI endpoint is the dense model"
    if not (ROOT / "models" / "minilm-l6" / "model.safetensors").exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"):
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh fetches it)")
    config = {**shipped, "endpoints": [e for e in shipped["endpoints"] if e["name"] in ("digits", "minilm")]}
    for e in config["endpoints"]:
        e["model"] = str((DEPLOY / e["model"]).resolve())
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    s = ServerProcess(path)
    try:
        base = f"http://{s.authority}"
        assert requests.get(base + "/info", timeout=5).json()["model_id"] == "minilm"
        texts = ["Kubernetes schedules pods onto nodes.", "A man is eating food."]
        tei = requests.post(base + "/embed", json={"inputs": texts}, timeout=60)
        openai = requests.post(base + "/v1/embeddings", json={"model": "minilm", "input": texts}, timeout=60)
        assert tei.status_code == 200 and openai.status_code == 200, tei.text + openai.text
        for got, want in zip(tei.json(), sorted(openai.json()["data"], key=lambda d: d["index"])):
            a, b = np.asarray(got), np.asarray(want["embedding"])
            assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.9999
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def load_all(path):
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_manifests_validate():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = kustomization["resources"]
    assert all((K8S / f).exists() for f in files)
    core = [str(K8S / f) for f in files if f != "servicemonitor.yaml"]
    r = subprocess.run([str(VENV_BIN / "kubernetes-validate"), "--strict", *core], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    # ServiceMonitor is a CRD without a bundled schema: check its shape by hand.
    sm = load_all(K8S / "servicemonitor.yaml")[0]
    svc = load_all(K8S / "service.yaml")[0]
    assert sm["apiVersion"] == "monitoring.coreos.com/v1" and sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}


def test_deployment_is_consistent_with_the_server():
    dep = load_all(K8S / "deployment.yaml")[0]
    cm = load_all(K8S / "configmap.yaml")[0]
    config = json.loads(cm["data"]["config.json"])
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["startupProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][-1])
    assert pod["terminationGracePeriodSeconds"] >= pre_stop + config["server"]["gracePeriodSeconds"] + 5
    assert pod["securityContext"]["runAsNonRoot"] and c["securityContext"]["allowPrivilegeEscalation"] is False
    assert dep["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == str(config["server"]["port"])
    assert c["ports"][0]["containerPort"] == config["server"]["port"]


def test_configmap_config_is_accepted_by_the_server(tmp_path):
    cm = load_all(K8S / "configmap.yaml")[0]
    config = json.loads(cm["data"]["config.json"])
    for e in config["endpoints"]:
        e["model"] = e["model"].replace("/app/models", str(ROOT / "models"))
    # the keys come from the Secret the Deployment mounts at /app/secrets
    dep = load_all(K8S / "deployment.yaml")[0]
    pod = dep["spec"]["template"]["spec"]
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "keys")
    secret = next(v for v in pod["volumes"] if v["name"] == "keys")["secret"]
    assert config["server"]["apiKeysFile"] == f"{mount['mountPath']}/{secret['items'][0]['path']}"
    key = "k8s-test-key-0123456789abcdef"
    (tmp_path / "api-keys").write_text(f"# rotated 2026-12\n{key}\n")
    config["server"]["apiKeysFile"] = str(tmp_path / "api-keys")
    config["server"]["host"] = "127.0.0.1"
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    s = ServerProcess(path)
    try:
        url = f"http://{s.authority}/v2/models/digits/ready"
        assert requests.get(url, timeout=5).status_code == 401
        assert requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=5).status_code == 200
        assert requests.get(f"http://{s.authority}/v2/health/ready", timeout=5).status_code == 200  # probes
    finally:
        assert s.stop() == 0


def test_compose_file(server):
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"sparse-serve", "prometheus", "grafana"}
    assert services["sparse-serve"]["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / services["sparse-serve"]["build"]["context"] / "Dockerfile").exists()
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in svc.get("volumes", []):
            src = volume.split(":")[0]
            assert (DEPLOY / src).exists(), f"{name}: missing {src}"
        for dep in svc.get("depends_on", []):
            assert dep in services
    # SparseServe's keys come from a Compose secret (a file kept out of git)
    app = services["sparse-serve"]
    assert app["secrets"] == ["api-keys"] and compose["secrets"]["api-keys"]["file"] == "./secrets/api-keys"
    assert app["environment"]["SPARSESERVE_API_KEYS_FILE"] == "/run/secrets/api-keys"
    assert "Deploy/secrets/" in (ROOT / ".gitignore").read_text()
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert prom["scrape_configs"][0]["static_configs"][0]["targets"] == ["sparse-serve:8000"]
    # every metric the Grafana dashboard queries is exported by the live server
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "sparse-serve.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"sparseserve_[a-z_]+", exprs)}
    exported = requests.get(f"http://{server.authority}/metrics", timeout=5).text
    for metric in used:
        assert f"# TYPE {metric} " in exported, f"dashboard uses {metric}, which /metrics does not export"


def test_docker_build_context_has_every_target():
    """SwiftPM refuses a manifest whose target directories are missing, so the build stage must
    copy every target's directory and .dockerignore must not drop it."""
    manifest = (ROOT / "Package.swift").read_text()
    explicit = set(re.findall(r'path: "([^"]+)"', manifest))
    named = set(re.findall(r'\.(?:target|executableTarget)\(name: "([^"]+)"(?![^)]*path:)', manifest))
    tests = set(re.findall(r'\.testTarget\(name: "([^"]+)"', manifest))
    dirs = explicit | {f"Sources/{n}" for n in named} | {f"Tests/{n}" for n in tests}
    dockerfile = (ROOT / "Dockerfile").read_text().split("FROM ${RUNTIME_IMAGE}")[0]
    copied = re.findall(r"^COPY (\S+) ", dockerfile, re.M)
    ignored = [l.strip() for l in (ROOT / ".dockerignore").read_text().splitlines() if l.strip()]
    for d in dirs:
        assert (ROOT / d).is_dir(), d
        assert any(d == c or d.startswith(c.rstrip("/") + "/") for c in copied), f"{d} is not copied into the build stage"
        assert not any(d == i or d.startswith(i + "/") for i in ignored), f"{d} is excluded by .dockerignore"
