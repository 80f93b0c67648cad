"""Issue 19 item 1: OpenAI's model listing, GET /v1/models and /v1/models/{id}, with the unmodified
`openai` client: the text-embedding endpoints as OpenAI model objects, only those the key opens,
unknown or over-long ids 404 in OpenAI's shape."""
import json
import os

import openai
import pytest
import requests

from conftest import ROOT, ServerProcess

MINILM = ROOT / "models" / "minilm-l6"
SERVER_KEY = "models-server-key-0123456789"
MINILM_KEY = "models-minilm-key-0123456789"
DIGITS_KEY = "models-digits-key-0123456789"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not (MINILM / "model.safetensors").exists() and not os.environ.get("SPARSESERVE_REQUIRE_ALL"):
        pytest.skip("models/minilm-l6 is absent (scripts/fetch-minilm.sh fetches it)")
    path = tmp_path_factory.mktemp("models") / "config.json"
    path.write_text(json.dumps({"server": {"threads": 2, "apiKeys": [SERVER_KEY]}, "endpoints": [
        {"name": "minilm", "model": str(MINILM), "apiKeys": [MINILM_KEY]},
        {"name": "digits", "model": str(ROOT / "models" / "digits-mlp"), "apiKeys": [DIGITS_KEY]}]}))
    s = ServerProcess(path)
    yield s
    assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def client(server, key):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


def test_list_and_retrieve_with_the_openai_client(served):
    c = client(served, SERVER_KEY)
    models = c.models.list()
    assert [m.id for m in models.data] == ["minilm"], "only the text-embedding endpoints are listed"
    m = models.data[0]
    assert m.object == "model" and m.owned_by == "sparse-serve" and m.created > 1_700_000_000
    one = c.models.retrieve("minilm")
    assert (one.id, one.object, one.created, one.owned_by) == ("minilm", "model", m.created, "sparse-serve")
    # the listed model really serves embeddings through the same client
    e = c.embeddings.create(model=one.id, input="a listed model embeds")
    assert len(e.data[0].embedding) == 384


def test_list_holds_what_the_key_opens(served):
    assert [m.id for m in client(served, MINILM_KEY).models.list().data] == ["minilm"]
    assert client(served, DIGITS_KEY).models.list().data == []
    with pytest.raises(openai.AuthenticationError):
        client(served, "wrong-key-0123456789abcdef").models.list()
    with pytest.raises(openai.AuthenticationError):
        client(served, DIGITS_KEY).models.retrieve("minilm")


@pytest.mark.parametrize("model_id", ["nope", "digits", "x" * 5000, "a%2Fb"])
def test_unknown_or_overlong_ids_are_openai_404s(served, model_id):
    with pytest.raises(openai.NotFoundError):
        client(served, SERVER_KEY).models.retrieve(model_id)
    r = requests.get(f"{served.url}/v1/models/{model_id}", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=5)
    assert r.status_code == 404
    err = r.json()["error"]
    assert err["type"] == "not_found_error" and "unknown model" in err["message"] and len(err["message"]) < 400
    assert served.alive()


def test_unauthenticated_is_401_in_openai_shape(served):
    r = requests.get(served.url + "/v1/models", timeout=5)
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert requests.post(served.url + "/v1/models", headers={"Authorization": f"Bearer {SERVER_KEY}"}, timeout=5).status_code == 405
