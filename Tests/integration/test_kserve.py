"""KServe's InferenceRESTClient (v2 protocol) against the real server."""
import json
import os
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import ROOT

KSERVE_PYTHON = ROOT / ".venv-kserve" / "bin" / "python"


@pytest.mark.skipif(not KSERVE_PYTHON.exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"),
                    reason="no .venv-kserve (scripts/test.sh creates it)")
def test_kserve_rest_client(server, tmp_path):
    data = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
    x = data["inputs"][:20]
    np.save(tmp_path / "x.npy", x)
    r = subprocess.run([str(KSERVE_PYTHON), str(ROOT / "Tests" / "integration" / "clients" / "kserve_client.py"),
                        server.url, str(tmp_path / "x.npy")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["live"] and result["ready"] and result["model_ready"]
    assert result["id"] == "kserve-1" and result["model_name"] == "digits"
    probabilities = np.array(result["outputs"]["probabilities"])
    assert probabilities.shape == (20, 10)
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-5)
    assert (np.array(result["outputs"]["label"]) == probabilities.argmax(axis=1)).all()
    assert "404" in result["missing"] and "unknown model 'no-such-model'" in result["missing"]
