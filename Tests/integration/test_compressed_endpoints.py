"""Endpoints whose compression comes from the config: served, reported, and measured."""
import numpy as np
import requests
import tritonclient.http as httpclient
from safetensors.numpy import load_file

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

DIGITS = str(ROOT / "models" / "digits-mlp")


def test_compressed_endpoints(tmp_path):
    endpoints = [
        DEFAULT_ENDPOINTS[0],
        {"name": "digits-2of4", "model": DIGITS, "compression": {"method": "nm", "n": 2, "m": 4, "mask": "magnitude", "pin": True}},
        {"name": "digits-4of8-dense-head", "model": DIGITS,
         "compression": {"method": "nm", "n": 4, "m": 8, "pin": True, "layers": {"fc3": {"method": "dense"}}}},
        {"name": "digits-csr50", "model": DIGITS, "compression": {"method": "csr", "density": 0.5, "pin": True}},
        {"name": "digits-2of4-transposable", "model": DIGITS,
         "compression": {"method": "nm", "n": 2, "m": 4, "mask": "transposable", "pin": True, "layers": {"fc3": {"method": "dense"}}}},
        {"name": "digits-2of4-timed", "model": DIGITS, "compression": {"method": "nm", "n": 2, "m": 4}},
        {"name": "digits-l1inf", "model": DIGITS, "compression": {"method": "dense", "layers": {
            "fc1": {"method": "l1inf", "groups": "columns", "radiusRatio": 0.95}}}},
        {"name": "digits-blast50", "model": DIGITS, "compression": {"method": "blast", "blocks": 4, "parameterRatio": 0.5, "pin": True,
                                                                    "layers": {"fc3": {"method": "dense"}}}},
    ]
    s = ServerProcess(write_config(tmp_path, endpoints))
    try:
        data = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
        x, labels = data["inputs"], data["labels"]
        client = httpclient.InferenceServerClient(s.authority)
        accuracy = {}
        for e in endpoints:
            meta = requests.get(f"{s.url}/v2/models/{e['name']}", timeout=5).json()
            layers = {l["name"]: l for l in meta["compression"]["layers"]}
            assert set(layers) == {"fc1", "fc2", "fc3"}
            inp = httpclient.InferInput("input", list(x.shape), "FP32")
            inp.set_data_from_numpy(x)
            predicted = client.infer(e["name"], [inp]).as_numpy("probabilities").argmax(axis=1)
            accuracy[e["name"]] = float((predicted == labels).mean())
            if e["name"] == "digits":
                assert meta["compression"]["density"] == 1 and all(l["storage"] == "dense" for l in layers.values())
            elif e["name"] not in ("digits-2of4-timed", "digits-l1inf"):
                assert meta["compression"]["density"] < 0.8
            if e["name"] == "digits-2of4":
                assert all(l["storage"] == "nm 2:4" and 0 < l["relative_error"] < 1 for l in layers.values())
            if e["name"] == "digits-2of4-timed":
                # the faster of the sparse and the dense form runs; the choice is reported
                assert all(l["storage"] == "nm 2:4" or l["storage"].startswith("dense (nm 2:4 timed slower") for l in layers.values())
                continue
            if e["name"] == "digits-2of4-transposable":
                assert layers["fc1"]["storage"] == "nm 2:4" and layers["fc3"]["storage"] == "dense"
            if e["name"] == "digits-l1inf":
                # 60 of 64 pixel columns survive rho = 0.95: fc1 runs on the gathered inputs
                assert layers["fc1"]["storage"].startswith("l1inf columns: dense 256x") and layers["fc1"]["storage"].endswith(" of 256x64")
                assert layers["fc1"]["storage"] != "l1inf columns: dense 256x64 of 256x64"
                assert meta["compression"]["density"] < 1
            if e["name"] == "digits-blast50":
                assert layers["fc2"]["storage"] == "blast b=4x4 r=62" and layers["fc3"]["storage"] == "dense"
            if e["name"] == "digits-4of8-dense-head":
                assert layers["fc3"]["storage"] == "dense" and layers["fc1"]["storage"] == "nm 4:8"
        print("test-split accuracy:", accuracy)
        assert accuracy["digits"] > 0.97
        assert all(a > 0.3 for a in accuracy.values())
        metrics = requests.get(s.url + "/metrics", timeout=5).text
        assert 'sparseserve_model_info{model="digits-2of4",version="1",architecture="mlp",compression="nm"} 1' in metrics
        density = float(next(l for l in metrics.splitlines() if l.startswith('sparseserve_model_density{model="digits-2of4"}')).split()[-1])
        assert 0.45 < density < 0.55
    finally:
        assert s.stop() == 0
