"""Fixtures that start the real sparse-serve binary on a loopback port and stop it with SIGTERM."""
import json
import os
import pathlib
import re
import signal
import socket
import subprocess
import threading
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPARSESERVE_BINARY", str(ROOT / ".build" / "release" / "sparse-serve"))


class ServerProcess:
    """A running sparse-serve process; `url`, `host`, `port` and captured stderr lines."""

    def __init__(self, config_path, extra_args=()):
        """config_path None starts without --config (e.g. with --model-dir in extra_args)."""
        config = [] if config_path is None else ["--config", str(config_path)]
        self.proc = subprocess.Popen(
            [BINARY, "serve", *config, "--port", "0", "--host", "127.0.0.1", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        self.stderr_lines = []
        threading.Thread(target=self._drain_stderr, daemon=True).start()
        deadline = time.time() + 60
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"listening on (http://\S+)", line)
            if m:
                self.url = m.group(1)
                hostport = self.url.split("//", 1)[1]
                self.host, port = hostport.rsplit(":", 1)
                self.port = int(port)
                self.authority = f"127.0.0.1:{self.port}"
                return
        self.proc.kill()
        raise RuntimeError(f"server did not start: {line!r} stderr={''.join(self.stderr_lines)[-2000:]}")

    def _drain_stderr(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    def alive(self):
        return self.proc.poll() is None

    def stop(self, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise
        return self.proc.returncode


def write_config(tmp_path, endpoints, server=None):
    config = {"server": {"threads": 2, "ioThreads": 2, **(server or {})}, "endpoints": endpoints}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return path


DEFAULT_ENDPOINTS = [
    {"name": "digits", "model": str(ROOT / "models" / "digits-mlp")},
    {"name": "identity", "model": str(ROOT / "Tests" / "fixtures" / "models" / "identity")},
    {"name": "digits-batched", "model": str(ROOT / "models" / "digits-mlp"),
     "batching": {"maxBatchSize": 16, "maxQueueDelayMicroseconds": 20000, "maxQueueSize": 64}},
]


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    path = write_config(tmp_path_factory.mktemp("cfg"), DEFAULT_ENDPOINTS,
                        server={"maxBodyBytes": 4 << 20, "headerReadTimeoutSeconds": 2})
    s = ServerProcess(path)
    yield s
    rc = s.stop()
    assert rc == 0, "".join(s.stderr_lines)[-3000:]


def raw_exchange(port, payload, timeout=5.0, read_until_close=False):
    """Sends raw bytes and returns what the server answered (until it closes, or the timeout)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        chunks = []
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
            if not read_until_close and b"\r\n\r\n" in b"".join(chunks):
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                if m and len(body) >= int(m.group(1)):
                    break
        return b"".join(chunks)


def parse_responses(data):
    """Splits a byte stream into (status, headers, body) responses using Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        out.append((status, headers, rest[:n]))
        data = rest[n:]
    return out
