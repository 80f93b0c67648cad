"""v2 protocol behaviour over the wire: health, metadata, every datatype, and precise 4xx errors."""
import json

import pytest
import requests


def url(server, path):
    return f"http://{server.authority}{path}"


def get(server, path, **kw):
    return requests.get(url(server, path), timeout=10, **kw)


def post(server, path, body, **kw):
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(url(server, path), data=data, timeout=10, **kw)


def assert_error(resp, status, *fragments):
    assert resp.status_code == status, resp.text
    assert resp.headers["Content-Type"] == "application/json"
    message = resp.json()["error"]
    for f in fragments:
        assert f in message, message
    return message


def test_health_bodies(server):
    r = get(server, "/v2/health/live")
    assert r.status_code == 200 and r.json() == {"live": True}
    r = get(server, "/v2/health/ready")
    assert r.status_code == 200 and r.json() == {"ready": True}
    r = get(server, "/v2/models/digits/ready")
    assert r.status_code == 200 and r.json() == {"name": "digits", "ready": True}
    r = get(server, "/v2/models/digits/versions/1/ready")
    assert r.status_code == 200


def test_server_and_model_metadata(server):
    r = get(server, "/v2")
    assert r.status_code == 200
    assert r.json()["name"] == "sparse-serve" and "version" in r.json() and isinstance(r.json()["extensions"], list)
    meta = get(server, "/v2/models/digits").json()
    assert meta["versions"] == ["1"] and meta["platform"] == "sparseserve_mlp"
    assert get(server, "/v2/models/digits/versions/1").json() == meta
    # percent-encoded model names are decoded before lookup
    assert get(server, "/v2/models/%64igits").json() == meta


def test_unknown_model_version_route_and_verb(server):
    assert_error(get(server, "/v2/models/nope"), 404, "unknown model 'nope'")
    assert_error(post(server, "/v2/models/nope/infer", {"inputs": []}), 404, "nope")
    assert_error(get(server, "/v2/models/digits/versions/7"), 404, "version '7'")
    assert_error(get(server, "/v3/whatever"), 404)
    r = requests.delete(url(server, "/v2/health/live"), timeout=10)
    assert_error(r, 405)
    assert "GET" in r.headers["Allow"]
    assert_error(get(server, "/v2/models/digits/infer"), 405, "POST")


def test_head_has_headers_but_no_body(server):
    r = requests.head(url(server, "/v2/health/live"), timeout=10)
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(b'{"live":true}')
    assert r.content == b""


def test_request_id_header_echo(server):
    r = get(server, "/v2/health/live", headers={"X-Request-ID": "abc-123"})
    assert r.headers["X-Request-ID"] == "abc-123"


IDENTITY_CASES = [
    ("FP32", [[1.5, -2.25], [3.0, 4.0]], [1.5, -2.25, 3.0, 4.0]),
    ("FP64", [[1e300, -2.5]], [1e300, -2.5]),
    ("INT32", [[2147483647, -2147483648]], [2147483647, -2147483648]),
    ("INT64", [[9223372036854775807, -9223372036854775808]], [9223372036854775807, -9223372036854775808]),
    ("UINT8", [[0, 255, 7]], [0, 255, 7]),
    ("BOOL", [[True, False, True]], [True, False, True]),
    ("BYTES", [["héllo", "", "a\"b"]], ["héllo", "", "a\"b"]),
]


@pytest.mark.parametrize("dtype,data,flat", IDENTITY_CASES)
def test_every_datatype_round_trips(server, dtype, data, flat):
    shape = [len(data), len(data[0])]
    inputs = []
    for other, odata, _ in IDENTITY_CASES:
        if other == dtype:
            inputs.append({"name": f"{dtype}_IN", "datatype": dtype, "shape": shape, "data": data})
        else:
            inputs.append({"name": f"{other}_IN", "datatype": other, "shape": [1, len(odata[0])], "data": odata[0]})
    body = {"id": "x1", "inputs": inputs, "outputs": [{"name": f"{dtype}_OUT"}]}
    r = post(server, "/v2/models/identity/infer", body)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model_name"] == "identity" and out["id"] == "x1"
    assert len(out["outputs"]) == 1
    o = out["outputs"][0]
    assert o["name"] == f"{dtype}_OUT" and o["datatype"] == dtype and o["shape"] == shape
    assert o["data"] == flat


def digits_body(shape=(1, 64), data=None, dtype="FP32", name="input"):
    n = shape[0] * shape[1] if len(shape) == 2 else 1
    return {"inputs": [{"name": name, "shape": list(shape), "datatype": dtype,
                        "data": data if data is not None else [1.0] * n}]}


@pytest.mark.parametrize("body,fragments", [
    (digits_body(shape=(1, 63), data=[0.0] * 63), ["shape [1, 63]", "dimension 1"]),
    (digits_body(shape=(1, 64), data=[0.0] * 60), ["needs 64 elements", "has 60"]),
    (digits_body(dtype="FP64"), ["datatype FP64", "FP32"]),
    (digits_body(dtype="FP17"), ["unsupported datatype 'FP17'"]),
    (digits_body(name="pixels"), ["unexpected input 'pixels'", "'input'"]),
    ({"inputs": []}, ["must not be empty"]),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32"}]}, ["'data' is required"]),
    ({"inputs": [{"name": "input", "shape": [1, -64], "datatype": "FP32", "data": []}]}, ["non-negative"]),
    ({"inputs": [{"name": "input", "shape": [0, 64], "datatype": "FP32", "data": []}]}, ["at least 1"]),
    ({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": ["a"] * 64}]}, ["element 0", "number"]),
    ({"outputs": [{"name": "nope"}], **digits_body()}, ["unknown output 'nope'"]),
    ({"notinputs": 1}, ["'inputs' is required"]),
    ([1, 2, 3], ["must be a JSON object"]),
    ({"inputs": [{"name": "input", "shape": [4294967296, 4294967296], "datatype": "FP32", "data": [1]}]}, ["non-negative integers"]),
    ({"inputs": [{"name": "input", "shape": [67108864, 64], "datatype": "FP32", "data": [1]}]}, ["too large"]),
])
def test_bad_infer_requests_name_the_problem(server, body, fragments):
    assert_error(post(server, "/v2/models/digits/infer", body), 400, *fragments)


def test_nan_and_infinity_are_rejected(server):
    for token in ["NaN", "Infinity", "-Infinity"]:
        raw = '{"inputs":[{"name":"input","shape":[1,2],"datatype":"FP32","data":[1,%s]}]}' % token
        raw = raw.replace("[1,2]", "[1,64]").replace("[1,%s]" % token, "[" + ",".join(["1"] * 63 + [token]) + "]")
        assert_error(post(server, "/v2/models/digits/infer", raw), 400, "element 63")


@pytest.mark.parametrize("raw,fragment", [
    (b"", "empty"),
    (b"{", "invalid JSON"),
    (b'{"inputs": [1,]}', "invalid JSON"),
    (b'{"a":1,"a":2}', "duplicate key"),
    (b"\xff\xfe", "invalid JSON"),
    (b"[" * 10000, "nesting"),
])
def test_malformed_json_is_400(server, raw, fragment):
    assert_error(post(server, "/v2/models/digits/infer", raw), 400, fragment)


def test_nested_and_flat_data_are_equal(server):
    row = [float(i % 17) for i in range(64)]
    flat = post(server, "/v2/models/digits/infer", digits_body(shape=(2, 64), data=row + row)).json()
    nested = post(server, "/v2/models/digits/infer", digits_body(shape=(2, 64), data=[row, row])).json()
    assert flat["outputs"] == nested["outputs"]


def test_oversized_body_is_413(server):
    big = b"[" + b"1," * (3 << 20) + b"1]"
    r = requests.post(url(server, "/v2/models/digits/infer"), data=big, timeout=20)
    assert_error(r, 413)
    assert get(server, "/v2/health/live").status_code == 200
