"""gzip/deflate both ways and TLS (plaintext + HTTPS side by side, mutual TLS), with real clients."""
import gzip
import json
import ssl
import subprocess
import zlib

import gevent.ssl
import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from safetensors.numpy import load_file

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, parse_responses, raw_exchange, write_config

DATA = load_file(str(ROOT / "models" / "digits-mlp" / "test.safetensors"))
ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


def infer_body(n):
    x = DATA["inputs"][:n]
    return json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                   "data": x.ravel().tolist()}]}).encode()


@pytest.fixture(scope="module")
def gz(tmp_path_factory):
    endpoints = [DEFAULT_ENDPOINTS[0], dict(DEFAULT_ENDPOINTS[0], name="digits-nogzip", gzip={"minimumBytes": 1 << 30})]
    s = ServerProcess(write_config(tmp_path_factory.mktemp("gz"), endpoints,
                                   server={"gzip": {"minimumBytes": 200}, "maxBodyBytes": 1 << 20}))
    yield s
    assert s.stop() == 0


@pytest.mark.parametrize("coding,encode", [("gzip", gzip.compress), ("deflate", zlib.compress)])
def test_compressed_request_and_response(gz, coding, encode):
    body = infer_body(5)
    plain = requests.post(gz.url + "/v2/models/digits/infer", data=body, timeout=5,
                          headers={"Accept-Encoding": "identity"})
    r = requests.post(gz.url + "/v2/models/digits/infer", data=encode(body), timeout=5,
                      headers={"Content-Encoding": coding, "Accept-Encoding": coding})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Encoding"] == coding and "Accept-Encoding" in r.headers["Vary"]
    assert int(r.headers["Content-Length"]) < len(plain.content)
    assert r.json() == plain.json()  # requests decodes gzip and deflate transparently
    assert "Content-Encoding" not in plain.headers


def test_small_and_per_endpoint_responses_stay_plain(gz):
    r = requests.get(gz.url + "/v2/health/live", headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert "Content-Encoding" not in r.headers  # 14 bytes < minimumBytes 200
    r = requests.post(gz.url + "/v2/models/digits-nogzip/infer", data=infer_body(5), headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert r.status_code == 200 and "Content-Encoding" not in r.headers


def test_q_values_are_honoured(gz):
    r = requests.post(gz.url + "/v2/models/digits/infer", data=infer_body(5), timeout=5,
                      headers={"Accept-Encoding": "gzip;q=0.2, deflate;q=0.8"})
    assert r.headers["Content-Encoding"] == "deflate"
    r = requests.post(gz.url + "/v2/models/digits/infer", data=infer_body(5), timeout=5,
                      headers={"Accept-Encoding": "gzip;q=0"})
    assert "Content-Encoding" not in r.headers


def test_unknown_coding_is_415_with_accept_encoding(gz):
    r = requests.post(gz.url + "/v2/models/digits/infer", data=ONE, headers={"Content-Encoding": "br"}, timeout=5)
    assert r.status_code == 415 and r.headers["Accept-Encoding"] == "gzip, deflate, identity"
    assert "br" in r.json()["error"]


def test_zip_bomb_and_corrupt_bodies(gz):
    bomb = gzip.compress(b"0" * (50 << 20), compresslevel=9)  # 50 MB → ~50 KB, cap is 1 MiB
    r = requests.post(gz.url + "/v2/models/digits/infer", data=bomb, headers={"Content-Encoding": "gzip"}, timeout=30)
    assert r.status_code == 413 and "decompressed" in r.json()["error"]
    r = requests.post(gz.url + "/v2/models/digits/infer", data=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"}, timeout=5)
    assert r.status_code == 400 and "gzip" in r.json()["error"]
    assert requests.post(gz.url + "/v2/models/digits/infer", data=ONE, timeout=5).status_code == 200


@pytest.mark.parametrize("request_alg,response_alg", [("gzip", "gzip"), ("deflate", "deflate"), ("gzip", None), (None, "deflate")])
def test_tritonclient_compression(gz, request_alg, response_alg):
    client = httpclient.InferenceServerClient(gz.authority)
    x = DATA["inputs"][:40]
    inp = httpclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)  # binary tensor data (the client's default)
    result = client.infer("digits", [inp], request_compression_algorithm=request_alg,
                          response_compression_algorithm=response_alg)
    probabilities = result.as_numpy("probabilities")
    reference = httpclient.InferenceServerClient(gz.authority).infer("digits", [inp]).as_numpy("probabilities")
    assert probabilities.shape == (40, 10) and np.array_equal(probabilities, reference)


def test_curl_compressed(gz, tmp_path):
    r = subprocess.run(["curl", "-s", "--compressed", "-D", str(tmp_path / "head"), "-o", str(tmp_path / "body"),
                        "-H", "Content-Type: application/json", "--data-binary", "@Tests/fixtures/digits-one.json",
                        gz.url + "/v2/models/digits/infer"], capture_output=True, text=True, cwd=ROOT, timeout=10)
    assert r.returncode == 0, r.stderr
    head = (tmp_path / "head").read_text().lower()
    assert "content-encoding: gzip" in head or "content-encoding: deflate" in head, head
    assert json.loads((tmp_path / "body").read_text())["model_name"] == "digits"


# --- TLS -------------------------------------------------------------------------------------

def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=SparseServe test CA",
            "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.pem", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=client", "-keyout", "client.key", "-out", "client.csr", cwd=d)
    openssl("x509", "-req", "-in", "client.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "client.pem", cwd=d)
    return d


def start_tls(tmp_path, certs, **tls):
    config = write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"tls": {
        "certificate": str(certs / "server.pem"), "privateKey": str(certs / "server.key"), "port": 0, **tls}})
    s = ServerProcess(config)
    https = next(l for l in iter(s.proc.stdout.readline, "") if "listening on https://" in l)
    s.https_port = int(https.strip().rsplit(":", 1)[1])
    return s


def test_plaintext_and_tls_side_by_side(tmp_path, certs):
    s = start_tls(tmp_path, certs)
    try:
        base = f"https://127.0.0.1:{s.https_port}"
        out = subprocess.run(["curl", "-s", "--cacert", str(certs / "ca.pem"), "--data-binary", "@Tests/fixtures/digits-one.json",
                              base + "/v2/models/digits/infer"], capture_output=True, text=True, cwd=ROOT, timeout=10)
        assert out.returncode == 0 and json.loads(out.stdout)["model_name"] == "digits", out.stderr
        # TLS 1.1 is refused
        old = subprocess.run(["curl", "-s", "--cacert", str(certs / "ca.pem"), "--tls-max", "1.1", "--tlsv1.1", base + "/v2/health/live"],
                             capture_output=True, text=True, timeout=10)
        assert old.returncode != 0
        # the plaintext listener still answers
        assert requests.get(s.url + "/v2/health/live", timeout=5).status_code == 200
        # plaintext HTTP sent to the TLS port: no crash, connection closed
        raw_exchange(s.https_port, b"GET /v2/health/live HTTP/1.1\r\nHost: localhost\r\n\r\n", read_until_close=True, timeout=3)
        # tritonclient over HTTPS (keep-alive, binary tensors)
        ctx_factory = lambda: gevent.ssl.create_default_context(cafile=str(certs / "ca.pem"))
        client = httpclient.InferenceServerClient(f"127.0.0.1:{s.https_port}", ssl=True, ssl_context_factory=ctx_factory)
        assert client.is_server_ready()
        x = DATA["inputs"][:30]
        inp = httpclient.InferInput("input", list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        for _ in range(3):
            assert client.infer("digits", [inp]).as_numpy("probabilities").shape == (30, 10)
        assert s.alive()
    finally:
        assert s.stop() == 0


def test_mutual_tls(tmp_path, certs):
    s = start_tls(tmp_path, certs, clientCA=str(certs / "ca.pem"))
    try:
        url = f"https://127.0.0.1:{s.https_port}/v2/health/live"
        without = subprocess.run(["curl", "-s", "--cacert", str(certs / "ca.pem"), url], capture_output=True, timeout=10)
        assert without.returncode != 0
        with_cert = subprocess.run(["curl", "-s", "--cacert", str(certs / "ca.pem"), "--cert", str(certs / "client.pem"),
                                    "--key", str(certs / "client.key"), url], capture_output=True, text=True, timeout=10)
        assert with_cert.returncode == 0 and json.loads(with_cert.stdout) == {"live": True}
    finally:
        assert s.stop() == 0


def test_bad_certificate_path_stops_start_up(tmp_path, certs):
    config = write_config(tmp_path, DEFAULT_ENDPOINTS[:1], server={"tls": {
        "certificate": str(tmp_path / "missing.pem"), "privateKey": str(certs / "server.key")}})
    from conftest import BINARY
    r = subprocess.run([BINARY, "serve", "--config", str(config), "--port", "0"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "missing.pem" in r.stderr
