"""Deploy/kserve: the ClusterServingRuntime and InferenceServices against KServe's own schema, and the
runtime's container arguments against the real server on the folder layout KServe's storage
initializer leaves in /mnt/models."""
import json
import os
import signal
import subprocess
import time

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
    assert set(args) <= {"--model-dir", "--model-name", "--host", "--port", "--threads"}, args
    assert args["--model-dir"] == MOUNT and args["--host"] == "0.0.0.0"
    # KServe fills {{.Name}} with the InferenceService's name: the model's name in the v2 URLs.
    assert args["--model-name"] == "{{.Name}}"
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


def link_tree(source, target):
    """The files under source at their relative paths under target (symlinks: the models are large)."""
    for f in source.rglob("*"):
        if f.is_file():
            (target / f.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / f.relative_to(source)).symlink_to(f)


def lay_out_storage(tmp_path, model_folder):
    """What the storage initializer leaves in /mnt/models for a storageUri prefix holding a model
    folder's files: the objects under the prefix at their relative paths."""
    mnt = tmp_path / "mnt" / "models"
    mnt.mkdir(parents=True)
    link_tree(model_folder, mnt)
    return mnt


def runtime_command(mnt, isvc_name):
    """The runtime container's arguments as KServe runs them ({{.Name}} filled in), with
    /mnt/models moved to mnt and the listen address left to the caller."""
    args = runtime_arguments()
    args["--model-dir"] = args["--model-dir"].replace(MOUNT, str(mnt))
    args["--model-name"] = args["--model-name"].replace("{{.Name}}", isvc_name)
    args.pop("--host"), args.pop("--port")
    return [x for kv in args.items() for x in kv]


def start_runtime(mnt, isvc_name):
    return ServerProcess(None, runtime_command(mnt, isvc_name))


def compress_digits(out):
    r = subprocess.run([BINARY, "compress", "--model", str(ROOT / "models" / "digits-mlp"),
                        "--compression", json.dumps(DIGITS_2OF4), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def digits_accuracy(base, name):
    test = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
    x = test["inputs"]
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": list(x.shape), "data": x.ravel().tolist()}]}
    out = requests.post(f"{base}/v2/models/{name}/infer", json=body, timeout=60).json()["outputs"]
    probabilities = next(o for o in out if o["name"] == "probabilities")
    p = np.array(probabilities["data"]).reshape(probabilities["shape"])
    assert p.shape == (len(x), 10) and np.allclose(p.sum(axis=1), 1, atol=1e-5)
    return (p.argmax(axis=1) == test["labels"]).mean()


def test_runtime_serves_the_digits_artifact_from_the_storage_layout(tmp_path):
    mnt = lay_out_storage(tmp_path, compress_digits(tmp_path / "artifact"))
    s = start_runtime(mnt, "digits-2of4")
    try:
        base = f"http://{s.authority}"
        assert requests.get(f"{base}/v2/health/ready", timeout=5).status_code == 200
        assert requests.get(f"{base}/v2/models/digits-2of4/ready", timeout=5).status_code == 200
        index = requests.post(f"{base}/v2/repository/index", json={}, timeout=5)
        if index.status_code == 200:
            assert [m["name"] for m in index.json()] == ["digits-2of4"], index.text
        meta = requests.get(f"{base}/v2/models/digits-2of4", timeout=5).json()
        assert meta["compression"]["method"] == "nm", meta["compression"]
        assert "artifact" in json.dumps(meta["compression"]["source"]), meta["compression"]["source"]
        assert str(mnt) not in json.dumps(meta), "the served metadata exposes the mount path"
        assert digits_accuracy(base, "digits-2of4") > 0.5
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.mark.skipif(not (MINILM / "model.safetensors").exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"),
                    reason="models/minilm-l6 is absent (scripts/fetch-minilm.sh)")
def test_runtime_serves_minilm_safetensors_from_the_storage_layout(tmp_path):
    mnt = lay_out_storage(tmp_path, MINILM)
    s = start_runtime(mnt, "minilm")
    try:
        r = requests.post(f"http://{s.authority}/v1/embeddings", json={"model": "minilm", "input": ["a red bicycle"]},
                          timeout=60)
        assert r.status_code == 200, r.text
        v = np.array(r.json()["data"][0]["embedding"])
        assert v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_model_dir_serves_each_model_subfolder_and_rescans_on_sighup(tmp_path):
    """Without model.json at the top, each subfolder holding one is a model named after it
    (--model-name is then unused); SIGHUP re-reads the folder."""
    mnt = tmp_path / "mnt" / "models"
    link_tree(compress_digits(tmp_path / "artifact"), mnt / "digits-2of4")
    link_tree(ROOT / "Tests" / "fixtures" / "models" / "identity", mnt / "identity")
    (mnt / "notes").mkdir()
    (mnt / "notes" / "README.txt").write_text("not a model")
    s = start_runtime(mnt, "ignored-name")
    try:
        base = f"http://{s.authority}"
        assert requests.get(f"{base}/v2/models/digits-2of4/ready", timeout=5).status_code == 200
        assert requests.get(f"{base}/v2/models/identity/ready", timeout=5).status_code == 200
        assert requests.get(f"{base}/v2/models/ignored-name/ready", timeout=5).status_code == 404
        assert requests.get(f"{base}/v2/models/notes/ready", timeout=5).status_code == 404
        link_tree(ROOT / "models" / "digits-mlp", mnt / "digits")
        s.proc.send_signal(signal.SIGHUP)
        deadline = time.time() + 60
        while requests.get(f"{base}/v2/models/digits/ready", timeout=5).status_code != 200:
            assert time.time() < deadline, "".join(s.stderr_lines)[-3000:]
            time.sleep(0.2)
        assert digits_accuracy(base, "digits") > 0.9
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_model_dir_uses_the_config_it_holds(tmp_path):
    """A sparse-serve.json in the folder is the config (relative model paths against the folder)."""
    mnt = tmp_path / "mnt" / "models"
    link_tree(ROOT / "models" / "digits-mlp", mnt / "weights")
    (mnt / "sparse-serve.json").write_text(json.dumps({"endpoints": [
        {"name": "tuned", "model": "weights", "batching": {"maxBatchSize": 4}}]}))
    s = start_runtime(mnt, "digits")
    try:
        base = f"http://{s.authority}"
        assert requests.get(f"{base}/v2/models/tuned/ready", timeout=5).status_code == 200
        assert requests.get(f"{base}/v2/models/digits/ready", timeout=5).status_code == 404
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def failed_start(args):
    """Runs the server expecting it to stop at start; returns its stderr."""
    r = subprocess.run([BINARY, "serve", *args, "--port", "0", "--host", "127.0.0.1"],
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "listening" not in r.stdout, r.stdout
    return r.stderr


def test_an_empty_model_mount_stops_the_runtime_naming_the_path(tmp_path):
    mnt = tmp_path / "mnt" / "models"
    mnt.mkdir(parents=True)
    stderr = failed_start(runtime_command(mnt, "digits-2of4"))
    assert f"--model-dir '{mnt}'" in stderr and "holds no model" in stderr, stderr
    (mnt / "empty-folder").mkdir()
    (mnt / "model.safetensors").write_bytes(b"")  # weights without a manifest are not a model either
    stderr = failed_start(runtime_command(mnt, "digits-2of4"))
    assert f"--model-dir '{mnt}'" in stderr and "holds no model" in stderr, stderr


def test_a_missing_or_unreadable_model_mount_stops_the_runtime_naming_the_path(tmp_path):
    missing = tmp_path / "nothing-here"
    stderr = failed_start(runtime_command(missing, "digits-2of4"))
    assert f"--model-dir '{missing}': does not exist" in stderr, stderr
    a_file = tmp_path / "a-file"
    a_file.write_text("{}")
    stderr = failed_start(runtime_command(a_file, "digits-2of4"))
    assert f"--model-dir '{a_file}': is not a folder" in stderr, stderr
    if os.geteuid() != 0:  # root reads any folder
        locked = tmp_path / "locked"
        link_tree(ROOT / "models" / "digits-mlp", locked)
        locked.chmod(0)
        try:
            stderr = failed_start(runtime_command(locked, "digits-2of4"))
            assert f"--model-dir '{locked}': cannot be read" in stderr, stderr
        finally:
            locked.chmod(0o755)


def test_model_dir_flags_are_checked(tmp_path):
    stderr = failed_start(["--model-dir", str(tmp_path), "--config", str(ROOT / "Deploy" / "config.json")])
    assert "--config and --model-dir are alternatives" in stderr, stderr
    stderr = failed_start(["--model-name", "x", "--config", str(ROOT / "Deploy" / "config.json")])
    assert "--model-name needs --model-dir" in stderr, stderr
    mnt = lay_out_storage(tmp_path, ROOT / "Tests" / "fixtures" / "models" / "identity")
    stderr = failed_start(["--model-dir", str(mnt), "--model-name", "no spaces"])
    assert "'no spaces' cannot name an endpoint" in stderr, stderr
