"""Issue 19 item 2: the TEI-compatible API on the only text encoder, driven by unmodified TEI
clients (huggingface_hub's InferenceClient, LlamaIndex's TextEmbeddingsInference) and by raw
requests for every route, its bad input (TEI's error shape and statuses) and its security."""
import json
import os
import socket

import numpy as np
import pytest
import requests

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, parse_responses

MINILM = ROOT / "models" / "minilm-l6"
KEY = "tei-server-key-0123456789abc"
AUTH = {"Authorization": f"Bearer {KEY}"}
MAX_INPUTS, TOKEN_LIMIT, BUDGET = 8, 64, 512


@pytest.fixture(scope="module")
def tei(tmp_path_factory):
    if not (MINILM / "model.safetensors").exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"):
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh fetches it)")
    path = tmp_path_factory.mktemp("tei") / "config.json"
    # No compat.tei: the only text encoder serves the TEI routes.
    path.write_text(json.dumps({"server": {"threads": 2, "apiKeys": [KEY]}, "endpoints": [
        {"name": "minilm", "model": str(MINILM), "maxInputs": MAX_INPUTS, "maxTokensPerInput": TOKEN_LIMIT,
         "maxBodyBytes": 65536, "batching": {"maxBatchSize": 32, "maxBatchTokens": BUDGET}},
        DEFAULT_ENDPOINTS[0]]}))
    s = ServerProcess(path)
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def post(server, path, body, headers=AUTH):
    return requests.post(server.url + path, json=body, headers=headers, timeout=60)


def openai_vectors(server, texts):
    r = post(server, "/v1/embeddings", {"model": "minilm", "input": texts})
    assert r.status_code == 200, r.text
    return np.array([d["embedding"] for d in sorted(r.json()["data"], key=lambda d: d["index"])])


def cosines(a, b):
    a, b = np.atleast_2d(a), np.atleast_2d(b)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


TEXTS = ["A man is eating food.", "Kubernetes schedules pods onto nodes.", "The new movie is awesome."]


def test_huggingface_hub_feature_extraction_equals_openai_embeddings(tei):
    from huggingface_hub import InferenceClient
    client = InferenceClient(model=tei.url, token=KEY, timeout=60)
    reference = openai_vectors(tei, TEXTS)
    for text, want in zip(TEXTS, reference):
        got = np.asarray(client.feature_extraction(text), dtype=np.float64).reshape(-1)
        assert got.shape == (384,)
        assert cosines(got, want)[0] >= 0.9999


def test_llama_index_tei_embedding_single_and_batch(tei):
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference
    embed = TextEmbeddingsInference(model_name="minilm", base_url=tei.url, auth_token=KEY, timeout=60, embed_batch_size=2)
    reference = openai_vectors(tei, TEXTS)
    one = np.array(embed.get_text_embedding(TEXTS[0]))
    assert cosines(one, reference[0])[0] >= 0.9999
    batch = np.array(embed.get_text_embedding_batch(TEXTS))
    assert batch.shape == (3, 384) and (cosines(batch, reference) >= 0.9999).all()


def test_embed_root_normalize_and_similarity(tei):
    reference = openai_vectors(tei, TEXTS)
    for path in ("/embed", "/"):
        r = post(tei, path, {"inputs": TEXTS})
        assert r.status_code == 200, r.text
        v = np.array(r.json())
        assert v.shape == (3, 384) and np.allclose(v, reference, atol=1e-5)
    single = post(tei, "/embed", {"inputs": TEXTS[1]}).json()
    assert np.array(single).shape == (1, 384), "a single string is still [[float]]"
    raw = np.array(post(tei, "/embed", {"inputs": TEXTS, "normalize": False}).json())
    norms = np.linalg.norm(raw, axis=1)
    assert (np.abs(norms - 1) > 0.05).all(), norms
    assert (cosines(raw, reference) >= 0.9999).all()
    r = post(tei, "/similarity", {"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS}})
    assert r.status_code == 200, r.text
    assert np.allclose(r.json(), reference @ reference[0], atol=1e-5)
    assert r.json()[0] == pytest.approx(1, abs=1e-5)


def test_tokenize_decode_and_embed_all(tei):
    text = "Hello world, café!"
    r = post(tei, "/tokenize", {"inputs": [text, "hello"]})
    assert r.status_code == 200, r.text
    tokens = r.json()[0]
    assert [t["id"] for t in tokens] == [101, 7592, 2088, 1010, 7668, 999, 102]
    assert tokens[0] == {"id": 101, "text": "[CLS]", "special": True, "start": None, "stop": None}
    raw = text.encode()
    for t in tokens[1:-1]:
        assert not t["special"] and t["text"] == raw[t["start"]:t["stop"]].decode()
    assert [t["text"] for t in tokens[1:-1]] == ["Hello", "world", ",", "café", "!"]
    bare = post(tei, "/tokenize", {"inputs": "hello", "add_special_tokens": False}).json()
    assert [t["id"] for t in bare[0]] == [7592]
    d = post(tei, "/decode", {"ids": [t["id"] for t in tokens]})
    assert d.status_code == 200 and d.json() == ["hello world, cafe!"]
    assert post(tei, "/decode", {"ids": [[101, 7592, 102]], "skip_special_tokens": False}).json() == ["[CLS] hello [SEP]"]
    states = post(tei, "/embed_all", {"inputs": [text, "hello"]})
    assert states.status_code == 200, states.text
    s = states.json()
    assert [len(x) for x in s] == [7, 3] and len(s[0][0]) == 384
    pooled = np.array(post(tei, "/embed", {"inputs": [text, "hello"], "normalize": False}).json())
    assert np.allclose(np.mean(np.array(s[0]), axis=0), pooled[0], atol=1e-4)
    assert np.allclose(np.mean(np.array(s[1]), axis=0), pooled[1], atol=1e-4)


def test_truncation_right_and_left(tei):
    long_text = " ".join(f"word{i}" for i in range(60))  # about 150 tokens
    ids = [t["id"] for t in post(tei, "/tokenize", {"inputs": long_text}).json()[0]]
    assert len(ids) > TOKEN_LIMIT
    for direction, kept in (("Right", ids[:TOKEN_LIMIT - 1] + [102]), ("Left", [101] + ids[-(TOKEN_LIMIT - 1):])):
        r = post(tei, "/embed", {"inputs": long_text, "truncate": True, "truncation_direction": direction})
        assert r.status_code == 200, r.text
        want = post(tei, "/embed", {"inputs": [kept]}).json()
        assert cosines(np.array(r.json()), np.array(want))[0] >= 0.99999, direction


def tei_error(r, status, fragment):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_type"} and fragment in body["error"], body
    return body["error_type"]


def test_bad_input_in_tei_shape_and_the_server_keeps_serving(tei):
    long_text = "word " * 400
    assert tei_error(post(tei, "/embed", {"inputs": ""}), 422, "empty") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": []}), 422, "empty") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": ["a"] * (MAX_INPUTS + 1)}), 413, f"at most {MAX_INPUTS}") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": long_text}), 413, "tokens") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": "x" * 5000}), 413, "bytes of text") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": 5}), 422, "'inputs'") == "validation"
    assert tei_error(post(tei, "/embed", {"inputs": [{"a": 1}]}), 422, "inputs[0]") == "validation"
    tei_error(post(tei, "/embed", {"inputs": "x", "truncate": "yes"}), 422, "'truncate'")
    tei_error(post(tei, "/embed", {"inputs": "x", "normalize": 1}), 422, "'normalize'")
    tei_error(post(tei, "/embed", {"inputs": "x", "truncation_direction": "up"}), 422, "truncation_direction")
    tei_error(post(tei, "/embed", {"text": "x"}), 422, "'inputs' is required")
    tei_error(post(tei, "/embed", [1, 2]), 422, "JSON object")
    tei_error(requests.post(tei.url + "/embed", data=b"{oops", headers=AUTH, timeout=5), 400, "malformed JSON")
    tei_error(post(tei, "/similarity", {"inputs": {"source_sentence": "a", "sentences": []}}), 422, "inputs.sentences")
    tei_error(post(tei, "/similarity", {"inputs": "a"}), 422, "source_sentence")
    tei_error(post(tei, "/decode", {"ids": [1, 99999999]}), 422, "outside the vocabulary")
    tei_error(post(tei, "/decode", {"ids": "abc"}), 422, "'ids'")
    tei_error(post(tei, "/tokenize", {"inputs": [""]}), 422, "inputs[0]")
    tei_error(post(tei, "/embed", {"inputs": "x", "prompt_name": "query"}), 422, "prompt_name")
    assert requests.get(tei.url + "/embed", headers=AUTH, timeout=5).status_code == 405
    assert tei.alive()
    assert post(tei, "/embed", {"inputs": "still serving"}).status_code == 200


def test_info_health_and_budget_in_metadata(tei):
    info = requests.get(tei.url + "/info", headers=AUTH, timeout=5).json()
    assert info["model_id"] == "minilm" and info["max_input_length"] == TOKEN_LIMIT
    assert info["max_batch_tokens"] == BUDGET and info["max_client_batch_size"] == MAX_INPUTS
    assert info["model_type"] == {"embedding": {"pooling": "mean"}} and info["version"]
    meta = requests.get(tei.url + "/v2/models/minilm", headers=AUTH, timeout=5).json()
    assert meta["parameters"]["max_batch_tokens"] == BUDGET and meta["parameters"]["max_batch_size"] == 32
    h = requests.get(tei.url + "/health", timeout=5)  # health is public by default, as in TEI
    assert h.status_code == 200 and h.content == b""


def send_head_only(port, path, length, auth=b""):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"POST %s HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s\r\n"
                  % (path.encode(), length, auth))
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return parse_responses(data)


@pytest.mark.parametrize("path", ["/embed", "/", "/embed_all", "/similarity", "/tokenize", "/decode"])
def test_auth_and_body_limit_from_the_head(tei, path):
    r = requests.post(tei.url + path, json={"inputs": "x"}, timeout=5)
    assert r.status_code == 401 and r.json()["error_type"] == "unauthorized" and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(tei.url + path, json={"inputs": "x"}, headers={"Authorization": "Bearer nope-0123456789abcdef"},
                         timeout=5).status_code == 401
    (status, headers, _), = send_head_only(tei.port, path, 50_000_000)
    assert status == 401 and headers["connection"] == "close", "no key: refused before any body byte"
    (status, _, _), = send_head_only(tei.port, path, 70_000, b"Authorization: Bearer %s\r\n" % KEY.encode())
    assert status == 413, "the endpoint's maxBodyBytes (65536) applies before the body is read"
    assert requests.get(tei.url + "/info", timeout=5).status_code == 401
    r = requests.post(tei.url + path, json={"inputs": "x"}, headers={**AUTH, "Host": "evil.example"}, timeout=5)
    assert r.status_code == 421
    r = requests.post(tei.url + path, json={"inputs": "x"}, headers={**AUTH, "Origin": "https://evil.example"}, timeout=5)
    assert r.status_code == 403


def test_routes_absent_without_a_text_encoder(server):
    for path in ("/embed", "/", "/info", "/health"):
        assert requests.request("GET" if path in ("/info", "/health") else "POST", server.url + path, json={"inputs": "x"},
                                timeout=5).status_code == 404, path
