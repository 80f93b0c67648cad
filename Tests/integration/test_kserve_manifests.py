"""Deploy/kserve: the ClusterServingRuntime and InferenceServices against KServe's own schema, and the
runtime's container arguments against the real server on the folder layout KServe's storage
initializer leaves in /mnt/models."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import requests
import yaml
from safetensors.numpy import load_file

from conftest import BINARY, ROOT, ServerProcess

KSERVE = ROOT / "Deploy" / "kserve"
KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"
SCHEMA_CHECK = ROOT / "Tests" / "integration" / "clients" / "kserve_schema.py"
MINILM = ROOT / "models" / "minilm-l6"
# The recipe inferenceservice-digits-2of4.yaml names for its artifact.
DIGITS_2OF4 = {"method": "nm", "n": 2, "m": 4}
MOUNT = "/mnt/models"

needs_kserve = pytest.mark.skipif(not KSERVE_PYTHON.exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"),
                                  reason="no .venv-kserve (scripts/test.sh creates it)")


def manifests():
    return sorted(KSERVE.glob("*.yaml"))


def documents(kind):
    docs = [d for p in manifests() for d in yaml.safe_load_all(p.read_text()) if d]
    return [d for d in docs if d["kind"] == kind]


def runtime():
    (r,) = documents("ClusterServingRuntime")
    return r


def schema_errors(paths):
    r = subprocess.run([str(KSERVE_PYTHON), str(SCHEMA_CHECK), *map(str, paths)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@needs_kserve
def test_manifests_match_kserve_schema():
    report = schema_errors(manifests())
    assert len(report) == 3, report
    assert all(errors == [] for errors in report.values()), report


@needs_kserve
def test_schema_check_refuses_what_kserve_refuses(tmp_path):
    isvc = yaml.safe_load((KSERVE / "inferenceservice-digits-2of4.yaml").read_text())
    model = isvc["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")  # a misspelt field
    model["env"] = [{"value": "1"}]                # a core type (V1EnvVar) without its required name
    model["resources"] = {"limits": {"cpu": 2}}    # a quantity must be a string here
    rt = runtime()
    rt["spec"]["protocolVersions"] = "v2"          # a string where a list belongs
    del rt["spec"]["containers"]                   # a required field
    rt["spec"]["supportedModelFormats"][0]["priority"] = "1"
    (tmp_path / "isvc.yaml").write_text(yaml.safe_dump(isvc))
    (tmp_path / "rt.yaml").write_text(yaml.safe_dump(rt))
    report = schema_errors([tmp_path / "isvc.yaml", tmp_path / "rt.yaml"])
    isvc_errors, rt_errors = report[f"{tmp_path / 'isvc.yaml'}#0"], report[f"{tmp_path / 'rt.yaml'}#0"]
    assert any("predictor.model.storageURI: not a field" in e for e in isvc_errors), isvc_errors
    assert any("predictor.model.env[0] (V1EnvVar)" in e and "name" in e for e in isvc_errors), isvc_errors
    assert any("resources.limits.cpu: 2 is not a str" in e for e in isvc_errors), isvc_errors
    assert any("spec.protocolVersions: expected a list" in e for e in rt_errors), rt_errors
    assert any("containers" in e and "must not be `None`" in e for e in rt_errors), rt_errors
    assert any("supportedModelFormats[0].priority: '1' is not a int" in e for e in rt_errors), rt_errors


def runtime_arguments():
    """The runtime container's arguments as a flag -> value map (every flag takes one value)."""
    (container,) = runtime()["spec"]["containers"]
    args = container["args"]
    assert len(args) % 2 == 0 and all(a.startswith("--") for a in args[::2]), args
    return dict(zip(args[::2], args[1::2]))


def test_inference_services_fit_the_runtime():
    rt = runtime()
    (container,) = rt["spec"]["containers"]
    assert container["name"] == "kserve-container"
    args = runtime_arguments()
    assert set(args) <= {"--config", "--host", "--port", "--threads"}, args
    assert args["--config"] == f"{MOUNT}/sparse-serve.json" and args["--host"] == "0.0.0.0"
    assert container["ports"][0]["containerPort"] == int(args["--port"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == int(args["--port"])
    assert rt["spec"]["annotations"]["prometheus.kserve.io/port"] == args["--port"]
    formats = {(f["name"], f.get("version")) for f in rt["spec"]["supportedModelFormats"]}
    services = documents("InferenceService")
    assert {s["metadata"]["name"] for s in services} == {"digits-2of4", "minilm"}
    for s in services:
        model = s["spec"]["predictor"]["model"]
        assert model["runtime"] == rt["metadata"]["name"]
        assert (model["modelFormat"]["name"], model["modelFormat"].get("version")) in formats
        assert model["protocolVersion"] in rt["spec"]["protocolVersions"]
        assert model["storageUri"].rstrip("/").endswith("/" + s["metadata"]["name"])
        # The config uploaded beside the model names an endpoint after the InferenceService.
        config = json.loads((KSERVE / "storage" / s["metadata"]["name"] / "sparse-serve.json").read_text())
        assert s["metadata"]["name"] in {e["name"] for e in config["endpoints"]}


def lay_out_storage(tmp_path, name, model_folders):
    """What the storage initializer leaves in /mnt/models for a storageUri prefix holding
    sparse-serve.json and model folders: the objects under the prefix at their relative paths."""
    mnt = tmp_path / "mnt" / "models"
    mnt.mkdir(parents=True)
    shutil.copy(KSERVE / "storage" / name / "sparse-serve.json", mnt / "sparse-serve.json")
    for folder, source in model_folders.items():
        (mnt / folder).mkdir()
        for f in source.rglob("*"):
            if f.is_file():
                (mnt / folder / f.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
                (mnt / folder / f.relative_to(source)).symlink_to(f)
    return mnt


def start_runtime(mnt):
    """The runtime container's command line with /mnt/models moved to mnt, on a loopback port."""
    args = runtime_arguments()
    config = args.pop("--config").replace(MOUNT, str(mnt))
    args.pop("--host"), args.pop("--port")
    return ServerProcess(config, [x for kv in args.items() for x in kv])


def test_runtime_serves_the_digits_artifact_from_the_storage_layout(tmp_path):
    artifact = tmp_path / "artifact"
    r = subprocess.run([BINARY, "compress", "--model", str(ROOT / "models" / "digits-mlp"),
                        "--compression", json.dumps(DIGITS_2OF4), "--out", str(artifact)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    mnt = lay_out_storage(tmp_path, "digits-2of4", {"digits-2of4": artifact})
    s = start_runtime(mnt)
    try:
        base = f"http://{s.authority}"
        assert requests.get(f"{base}/v2/models/digits-2of4/ready", timeout=5).status_code == 200
        meta = requests.get(f"{base}/v2/models/digits-2of4", timeout=5).json()
        assert meta["compression"]["method"] == "nm", meta["compression"]
        assert "artifact" in json.dumps(meta["compression"]["source"]), meta["compression"]["source"]
        test = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
        x = test["inputs"]
        body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
        out = requests.post(f"{base}/v2/models/digits-2of4/infer", json=body, timeout=60).json()["outputs"]
        probabilities = next(o for o in out if o["name"] == "probabilities")
        p = np.array(probabilities["data"]).reshape(probabilities["shape"])
        assert p.shape == (len(x), 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
        assert (p.argmax(axis=1) == test["labels"]).mean() > 0.5
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.mark.skipif(not (MINILM / "model.safetensors").exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"),
                    reason="models/minilm-l6 is absent (scripts/fetch-minilm.sh)")
def test_runtime_serves_minilm_safetensors_from_the_storage_layout(tmp_path):
    mnt = lay_out_storage(tmp_path, "minilm", {"minilm-l6": MINILM})
    s = start_runtime(mnt)
    try:
        r = requests.post(f"http://{s.authority}/v1/embeddings", json={"model": "minilm", "input": ["a red bicycle"]},
                          timeout=60)
        assert r.status_code == 200, r.text
        v = np.array(r.json()["data"][0]["embedding"])
        assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_an_empty_model_mount_stops_the_runtime_naming_the_file(tmp_path):
    mnt = tmp_path / "mnt" / "models"
    mnt.mkdir(parents=True)
    with pytest.raises(RuntimeError) as failure:
        start_runtime(mnt)
    assert str(mnt / "sparse-serve.json") in str(failure.value)
