"""Shared pieces of the security tests: a health watcher that runs during an attack, RSS of the
server process, and a config with the repository admin API switched on."""
import socket
import threading
import time

import requests

from conftest import DEFAULT_ENDPOINTS, ROOT, ServerProcess, write_config

ADMIN_KEY = "admin-key-0123456789abcdef"
INFER_KEY = "infer-key-0123456789abcdef"
ONE = (ROOT / "Tests" / "fixtures" / "digits-one.json").read_bytes()


def rss_bytes(pid):
    """Resident set size of a process (VmRSS)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class HealthWatch:
    """Polls /v2/health/live on fresh connections while an attack runs; records the slowest
    answer and every failure. Use as a context manager, then check `assert_healthy()`."""

    def __init__(self, server, interval=0.1, pid=None):
        self.server, self.interval = server, interval
        self.pid = pid or server.proc.pid
        self.slowest, self.failures, self.samples, self.peak_rss = 0.0, [], 0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        url = f"http://{self.server.authority}/v2/health/live"
        while not self._stop.is_set():
            start = time.time()
            try:
                r = requests.get(url, timeout=5)
                if r.status_code != 200:
                    self.failures.append(f"status {r.status_code}: {r.text[:200]}")
            except requests.RequestException as error:
                self.failures.append(repr(error))
            self.slowest = max(self.slowest, time.time() - start)
            self.samples += 1
            try:
                self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))
            except OSError:
                self.failures.append("the server process is gone")
            self._stop.wait(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def assert_healthy(self, rss_limit=None):
        assert self.server.alive(), "".join(self.server.stderr_lines)[-3000:]
        assert self.samples > 0
        assert not self.failures, self.failures[:5]
        assert self.slowest < 1.0, f"health took {self.slowest:.2f} s during the attack"
        if rss_limit is not None:
            assert self.peak_rss < rss_limit, f"RSS peaked at {self.peak_rss >> 20} MiB (budget {rss_limit >> 20} MiB)"


def admin_server(tmp_path, endpoints=None, server=None, model_root=None):
    """A server with the repository admin API on: the admin key, and a model root holding copies
    of digits-mlp and identity (`server` may replace the whole admin section)."""
    root = model_root or make_model_root(tmp_path)
    settings = {"admin": {"enabled": True, "apiKeys": [ADMIN_KEY], "modelRoot": str(root)}, **(server or {})}
    path = write_config(tmp_path, endpoints or DEFAULT_ENDPOINTS[:2], server=settings)
    return ServerProcess(path), root


def make_model_root(tmp_path):
    """A model root holding copies of digits-mlp and identity."""
    import shutil
    root = tmp_path / "model-root"
    root.mkdir(exist_ok=True)
    for src, name in [(ROOT / "models" / "digits-mlp", "digits-mlp"),
                      (ROOT / "Tests" / "fixtures" / "models" / "identity", "identity")]:
        if not (root / name).exists():
            shutil.copytree(src, root / name)
    return root


def idle_sockets(port, count, source="127.0.0.2"):
    """Opens `count` connections from `source` (another loopback address: a second client) that
    send nothing; returns the sockets that were accepted."""
    out = []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(5)
        try:
            s.connect(("127.0.0.1", port))
        except OSError:
            s.close()
            break
        out.append(s)
    return out
