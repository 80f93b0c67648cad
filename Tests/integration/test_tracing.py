"""OpenTelemetry tracing (issue 19 item 5): spans reach a real OTLP/HTTP receiver (protobuf decoded
with the opentelemetry-proto package) with the caller's W3C trace id; a malformed traceparent starts
a new trace; the server span starts at the request head; a collector that is down, refusing or slow
costs requests nothing, drops spans from a bounded queue and counts them; OTEL_TRACES_SAMPLER picks
OpenTelemetry's samplers; export to an https collector trusts the CA of OTEL_EXPORTER_OTLP_CERTIFICATE
and nothing else; bad settings stop the start-up with a message naming them.

Every build exports spans (SparseServe/Tracing: SpanExporter posts OTLP/HTTP protobuf batches from
its own thread); the tests run against SPARSESERVE_BINARY like the others."""
import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest
import requests

from conftest import BINARY, DEFAULT_ENDPOINTS, ROOT, ServerProcess
from security_support import rss_bytes

BODY = {"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.5] * 64}]}
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
CHILDREN = {"read body", "authentication", "decode", "queue wait", "batch forward", "encode"}
# short export delay and timeouts so the tests do not wait for the defaults (5 s, 10 s)
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "200", "OTEL_EXPORTER_OTLP_TIMEOUT": "1000", "OTEL_BSP_EXPORT_TIMEOUT": "2000"}


class Receiver:
    """An OTLP/HTTP trace receiver on loopback: decodes ExportTraceServiceRequest bodies into spans.
    `delay` holds every answer that long (a slow collector); `refuse` answers with that status
    instead of accepting (a collector refusing the exporter, e.g. 403 for missing credentials)."""

    def __init__(self, delay=0.0, refuse=None, tls=None):
        """`tls`: (certificate, key) files to serve https with."""
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
        self.spans, self.resources, self.posts, self.delay, self.refuse = [], [], 0, delay, refuse
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces", self.path
                assert self.headers["Content-Type"] == "application/x-protobuf"
                request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                receiver.posts += 1
                if receiver.refuse:
                    self.send_response(receiver.refuse)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                for rs in request.resource_spans:
                    receiver.resources.append({a.key: a.value.string_value for a in rs.resource.attributes})
                    for ss in rs.scope_spans:
                        receiver.spans.extend(ss.spans)
                time.sleep(receiver.delay)
                out = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        scheme = "http"
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            scheme = "https"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()

    def trace(self, trace_id, expect, timeout=20):
        """Spans of `trace_id` (hex) once `expect(spans)` holds, or what arrived by the timeout."""
        deadline = time.time() + timeout
        while True:
            spans = [s for s in self.spans if s.trace_id.hex() == trace_id]
            if expect(spans) or time.time() > deadline:
                return spans
            time.sleep(0.1)


def attributes(span):
    out = {}
    for a in span.attributes:
        v = a.value
        out[a.key] = v.string_value if v.HasField("string_value") else v.int_value if v.HasField("int_value") else v.double_value
    return out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def launch(tmp_path, monkeypatch):
    """Starts the OTLP-enabled binary with extra args, environment and a `tracing` config section."""
    def start(args=(), env=None, tracing=None):
        for k, v in {**FAST_EXPORT, **(env or {})}.items():
            monkeypatch.setenv(k, v)
        config = {"server": {"threads": 2, "ioThreads": 2}, "endpoints": DEFAULT_ENDPOINTS}
        if tracing:
            config["tracing"] = tracing
        path = tmp_path / "config.json"
        path.write_text(json.dumps(config))
        return ServerProcess(path, extra_args=args)
    return start


def metric(server, series):
    for line in requests.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_spans_continue_the_callers_trace(launch, receiver):
    s = launch(args=["--otlp-endpoint", receiver.url, "--log-level", "debug"],
              env={"OTEL_SERVICE_NAME": "sparse-serve-under-test"})
    try:
        for model, trace_id in (("digits-batched", TRACE_ID), ("digits", "0af7651916cd43dd8448eb211c80319c")):
            r = requests.post(f"{s.url}/v2/models/{model}/infer", json=BODY, timeout=10,
                              headers={"traceparent": f"00-{trace_id}-{PARENT_ID}-01", "tracestate": "vendor=abc"})
            assert r.status_code == 200, r.text
            spans = receiver.trace(trace_id, lambda got: CHILDREN <= {x.name for x in got} and len(got) >= 7)
            names = {x.name for x in spans}
            assert CHILDREN <= names, names
            roots = [x for x in spans if x.name == "POST /v2/models/{model}/infer"]
            assert len(roots) == 1, names
            root = roots[0]
            assert root.parent_span_id.hex() == PARENT_ID and root.kind == root.SPAN_KIND_SERVER
            assert root.trace_state == "vendor=abc"
            a = attributes(root)
            assert a["http.response.status_code"] == 200 and a["http.request.method"] == "POST" and a["sparseserve.model"] == model
            for child in spans:
                if child is not root:
                    assert child.parent_span_id == root.span_id, child.name
                    assert root.start_time_unix_nano <= child.start_time_unix_nano <= child.end_time_unix_nano <= root.end_time_unix_nano
            forward = next(x for x in spans if x.name == "batch forward")
            fa = attributes(forward)
            assert fa["sparseserve.batch.requests"] >= 1 and fa["sparseserve.batch.rows"] >= 1 and fa["sparseserve.batch.tokens"] >= 1
        assert {"service.name": "sparse-serve-under-test"}.items() <= receiver.resources[0].items()
        # the trace id is in the log line of the request
        deadline = time.time() + 5
        while time.time() < deadline and not any(f"trace_id={TRACE_ID}" in line for line in s.stderr_lines):
            time.sleep(0.1)
        assert any(f"trace_id={TRACE_ID}" in line and "/v2/models/digits-batched/infer" in line for line in s.stderr_lines)
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_server_span_starts_at_the_head_so_a_slow_body_is_inside_it(launch, receiver):
    s = launch(args=["--otlp-endpoint", receiver.url])
    try:
        body = json.dumps(BODY).encode()
        head = (f"POST /v2/models/digits/infer HTTP/1.1\r\nHost: 127.0.0.1:{s.port}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\ntraceparent: 00-{TRACE_ID}-{PARENT_ID}-01\r\nConnection: close\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(head + body[:10])
            time.sleep(0.4)  # a slow client: the rest of the body comes later
            sock.sendall(body[10:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        spans = receiver.trace(TRACE_ID, lambda got: CHILDREN <= {x.name for x in got})
        root = next(x for x in spans if x.kind == x.SPAN_KIND_SERVER)
        read = next(x for x in spans if x.name == "read body")
        assert read.parent_span_id == root.span_id and read.start_time_unix_nano == root.start_time_unix_nano
        assert read.end_time_unix_nano - read.start_time_unix_nano >= 0.35e9, "the wait for the body is in the read body span"
        assert root.end_time_unix_nano - root.start_time_unix_nano >= 0.35e9, "and inside the server span"
        assert attributes(read)["http.request.body.size"] == len(body)
        assert all(x.start_time_unix_nano >= read.end_time_unix_nano for x in spans if x.name in CHILDREN - {"read body"})
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.mark.parametrize("traceparent", [
    "garbage",
    f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",             # upper-case hex
    f"00-{'0' * 32}-{PARENT_ID}-01",                      # all-zero trace id
    f"00-{TRACE_ID}-{'0' * 16}-01",                       # all-zero parent id
    f"ff-{TRACE_ID}-{PARENT_ID}-01",                      # forbidden version
    f"00-{TRACE_ID}-{PARENT_ID}-01-extra",                # version 00 has exactly four fields
    f"00-{TRACE_ID[:-1]}-{PARENT_ID}-01",                 # short trace id
    "00-" + "a" * 4000,                                   # long
])
def test_malformed_traceparent_starts_a_new_trace(launch, receiver, traceparent):
    s = launch(args=["--otlp-endpoint", receiver.url])
    try:
        r = requests.post(f"{s.url}/v2/models/digits/infer", json=BODY, timeout=10,
                          headers={"traceparent": traceparent, "tracestate": "k=v"})
        assert r.status_code == 200, r.text
        deadline = time.time() + 20
        while time.time() < deadline and not any(x.name.endswith("/infer") for x in receiver.spans):
            time.sleep(0.1)
        roots = [x for x in receiver.spans if x.name == "POST /v2/models/{model}/infer"]
        assert len(roots) == 1
        assert roots[0].trace_id.hex() not in (TRACE_ID, TRACE_ID.upper(), "0" * 32)
        assert roots[0].parent_span_id == b"" and roots[0].trace_state == ""
        assert s.alive()
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def requests_take(s, n, path="/v2/models/digits/infer"):
    """Seconds of each of n sequential requests, all checked 200."""
    times = []
    with requests.Session() as session:
        for _ in range(n):
            t = time.perf_counter()
            r = session.post(s.url + path, json=BODY, timeout=10)
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text
    return sorted(times)


def test_collector_down_requests_unaffected_and_drops_counted(launch):
    down = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    s = launch(args=["--otlp-endpoint", down])
    try:
        series = 'sparseserve_tracing_spans_dropped_total{reason="export_failed"}'
        assert metric(s, series) == 0
        requests_take(s, 200)
        rss0 = rss_bytes(s.proc.pid)
        times = requests_take(s, 2000)
        assert times[len(times) // 2] < 0.05 and times[-1] < 2, "requests waited on the exporter"
        deadline = time.time() + 30
        while time.time() < deadline and (metric(s, series) or 0) < 1000:
            time.sleep(0.5)
        assert metric(s, series) >= 1000, "spans that could not be exported are counted"
        assert rss_bytes(s.proc.pid) - rss0 < 32 << 20, "memory grew with a collector down"
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def test_refusing_collector_requests_unaffected_and_drops_counted(launch):
    refusing = Receiver(refuse=403)
    s = launch(args=["--otlp-endpoint", refusing.url])
    try:
        series = 'sparseserve_tracing_spans_dropped_total{reason="export_failed"}'
        times = requests_take(s, 300)
        assert times[len(times) // 2] < 0.05 and times[-1] < 2, "requests waited on the exporter"
        deadline = time.time() + 30
        while time.time() < deadline and (metric(s, series) or 0) < 300:
            time.sleep(0.5)
        assert refusing.posts >= 1 and metric(s, series) >= 300, "spans the collector refused are counted"
        assert s.alive()
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]
        refusing.close()


def test_slow_collector_bounded_queue_drops_and_counts(launch):
    slow = Receiver(delay=3.0)
    s = launch(args=["--otlp-endpoint", slow.url],
              env={"OTEL_BSP_MAX_QUEUE_SIZE": "64", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "32", "OTEL_EXPORTER_OTLP_TIMEOUT": "10000",
                   "OTEL_BSP_EXPORT_TIMEOUT": "10000"})
    try:
        requests_take(s, 100)
        rss0 = rss_bytes(s.proc.pid)
        times = requests_take(s, 2000)
        assert times[len(times) // 2] < 0.05 and times[-1] < 2, "requests waited on the exporter"
        series = 'sparseserve_tracing_spans_dropped_total{reason="queue_full"}'
        deadline = time.time() + 30
        while time.time() < deadline and (metric(s, series) or 0) < 1000:
            time.sleep(0.5)
        assert metric(s, series) >= 1000, "a full export queue drops spans and counts them"
        assert rss_bytes(s.proc.pid) - rss0 < 32 << 20, "memory grew with a slow collector"
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]
        slow.close()


def test_sample_ratio_zero_sends_no_new_traces(launch, receiver):
    s = launch(args=["--otlp-endpoint", receiver.url], env={"OTEL_TRACES_SAMPLER_ARG": "0"})
    try:
        requests_take(s, 20)
        # a caller's sampled trace is still followed (parent-based sampling)
        r = requests.post(f"{s.url}/v2/models/digits/infer", json=BODY, timeout=10,
                          headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert r.status_code == 200
        spans = receiver.trace(TRACE_ID, lambda got: len(got) >= 7)
        assert CHILDREN <= {x.name for x in spans}
        assert {x.trace_id.hex() for x in receiver.spans} == {TRACE_ID}
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


@pytest.mark.parametrize("sampler, arg, flags, caller_kept, new_kept", [
    # the caller's traceparent flags: 01 sampled, 00 not
    ("always_off", "1", "01", False, False),
    ("always_on", "0", "00", True, True),                     # the argument is not read; the caller's flag neither
    ("parentbased_always_off", "1", "01", True, False),       # follows the caller, records no new trace
    ("traceidratio", "1", "00", True, True),                  # decides on the trace id alone
    ("parentbased_traceidratio", "1", "00", False, True),     # follows the caller's unsampled flag
])
def test_otel_traces_sampler_picks_the_sampler(launch, receiver, sampler, arg, flags, caller_kept, new_kept):
    s = launch(args=["--otlp-endpoint", receiver.url], env={"OTEL_TRACES_SAMPLER": sampler, "OTEL_TRACES_SAMPLER_ARG": arg})
    try:
        r = requests.post(f"{s.url}/v2/models/digits/infer", json=BODY, timeout=10,
                          headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-{flags}"})
        assert r.status_code == 200, r.text
        requests_take(s, 5)  # five new traces
        expected = int(caller_kept) + 5 * int(new_kept)
        deadline = time.time() + (20 if expected else 1.5)  # nothing expected: several export intervals (200 ms)
        while time.time() < deadline and (not expected or len({x.trace_id for x in receiver.spans}) < expected):
            time.sleep(0.1)
        ids = {x.trace_id.hex() for x in receiver.spans}
        assert (TRACE_ID in ids) == caller_kept, ids
        assert len(ids - {TRACE_ID}) == (5 if new_kept else 0), ids
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]


def self_signed(tmp_path):
    """A certificate for 127.0.0.1 signed by its own key, made with the openssl command."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tmp_path / "collector.key"),
                    "-out", str(tmp_path / "collector.pem")], check=True, capture_output=True, timeout=60)
    return str(tmp_path / "collector.pem"), str(tmp_path / "collector.key")


@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_CERTIFICATE", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE"])
def test_https_collector_trusted_through_the_certificate_variable(launch, tmp_path, variable):
    cert, key = self_signed(tmp_path)
    secure = Receiver(tls=(cert, key))
    s = launch(args=["--otlp-endpoint", secure.url], env={variable: cert})
    try:
        r = requests.post(f"{s.url}/v2/models/digits/infer", json=BODY, timeout=10,
                          headers={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        assert r.status_code == 200, r.text
        spans = secure.trace(TRACE_ID, lambda got: CHILDREN <= {x.name for x in got})
        assert CHILDREN <= {x.name for x in spans}, "spans arrive over TLS"
        assert metric(s, 'sparseserve_tracing_spans_dropped_total{reason="export_failed"}') == 0
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]
        secure.close()


def test_https_collector_with_an_untrusted_certificate_gets_nothing(launch, tmp_path):
    cert, key = self_signed(tmp_path)
    secure = Receiver(tls=(cert, key))
    s = launch(args=["--otlp-endpoint", secure.url])  # the system's CAs do not know this certificate
    try:
        requests_take(s, 50)
        series = 'sparseserve_tracing_spans_dropped_total{reason="export_failed"}'
        deadline = time.time() + 20
        while time.time() < deadline and (metric(s, series) or 0) < 50:
            time.sleep(0.2)
        assert metric(s, series) >= 50, "spans the exporter could not send over TLS are counted"
        assert secure.posts == 0 and not secure.spans, "nothing went to a collector the exporter could not verify"
        assert any("TLS handshake" in line for line in s.stderr_lines), "".join(s.stderr_lines)[-2000:]
    finally:
        assert s.stop() == 0, "".join(s.stderr_lines)[-3000:]
        secure.close()


@pytest.mark.parametrize("how, named", [
    ({"args": ["--otlp-endpoint", "not a url"]}, "--otlp-endpoint"),
    ({"args": ["--otlp-endpoint", "ftp://collector:4318"]}, "--otlp-endpoint"),
    ({"tracing": {"otlpEndpoint": "http://"}}, "tracing.otlpEndpoint"),
    ({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"}}, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER_ARG": "1.5"}}, "OTEL_TRACES_SAMPLER_ARG"),
    ({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_TRACES_SAMPLER": "jaeger_remote"}}, "OTEL_TRACES_SAMPLER"),
    ({"env": {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, "tracing": {"sampler": "sometimes"}}, "tracing.sampler"),
])
def test_bad_tracing_settings_stop_the_start_with_a_clear_message(tmp_path, how, named):
    config = {"server": {"threads": 1}, "endpoints": DEFAULT_ENDPOINTS[:1]}
    if "tracing" in how:
        config["tracing"] = how["tracing"]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    env = {**os.environ, **how.get("env", {})}
    r = subprocess.run([BINARY, "serve", "--config", str(path), "--port", "0", *how.get("args", [])],
                       capture_output=True, text=True, timeout=60, env=env, cwd=ROOT)
    assert r.returncode != 0
    assert named in r.stderr and "listening" not in r.stdout, r.stderr
    if named in ("OTEL_TRACES_SAMPLER", "tracing.sampler"):
        assert "always_on" in r.stderr and "parentbased_traceidratio" in r.stderr, "the message lists the samplers"
    else:
        assert re.search(r"https?://", r.stderr), "the message shows what a valid endpoint looks like"
