"""The `inspect` command on the shipped model, plain and compressed, and its errors."""
import subprocess

from conftest import BINARY, ROOT


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_inspect_dense_and_compressed():
    r = run("inspect", "models/digits-mlp")
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line.split() for line in r.stdout.splitlines() if line.startswith("fc")}
    assert set(rows) == {"fc1", "fc2", "fc3"}
    assert rows["fc2"][2] == "256x256" and rows["fc2"][3] == "dense" and rows["fc2"][4] == str(256 * 256 + 256)
    assert "density 1.000" in r.stdout
    r = run("inspect", "models/digits-mlp", "--compression", '{"method": "nm", "n": 2, "m": 4, "pin": true, "layers": {"fc3": {"method": "dense"}}}')
    assert r.returncode == 0, r.stderr
    rows = {line.split()[0]: line for line in r.stdout.splitlines() if line.startswith("fc")}
    assert "nm 2:4" in rows["fc1"] and "nm 2:4" in rows["fc2"] and "dense" in rows["fc3"]
    assert float(r.stdout.split("density ")[-1]) < 0.6


def test_inspect_errors_name_the_problem():
    r = run("inspect", "models/no-such-model")
    assert r.returncode != 0 and "no-such-model" in r.stderr
    r = run("inspect", "models/digits-mlp", "--compression", '{"method": "nm", "n": 2, "m": 5}')
    assert r.returncode != 0 and "compression.m" in r.stderr
    r = run("inspect", "models/digits-mlp", "--compression", "{oops")
    assert r.returncode != 0 and "compression" in r.stderr
