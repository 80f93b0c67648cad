#!/usr/bin/env python3
"""Small-request HTTP throughput: SparseServe vs nginx serving a static JSON file, same wrk run.

Starts nginx (Debian package; 2 worker processes, keep-alive) on a loopback port with a static
`{"live":true}` file, and sparse-serve on the default config, then runs wrk with the same
settings against nginx's file, our `/v2/health/live` and a digits inference. Prints req/s,
latency percentiles, non-2xx counts and our/nginx ratio.

    python3 Benchmarks/scripts/http_vs_nginx.py [--duration 10] [--connections 64]
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = os.environ.get("SPARSESERVE_BINARY", str(ROOT / ".build" / "release" / "sparse-serve"))

NGINX_CONF = """
worker_processes 2;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
  uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
  default_type application/json;
  server {{ listen 127.0.0.1:{port}; root {tmp}/www; }}
}}
"""

POST_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url, connections, duration, script=None):
    cmd = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency", "--timeout", "10s", url]
    if script:
        cmd[1:1] = ["-s", str(script)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": rps, "p50": pct(50), "p99": pct(99), "non2xx": non2xx, "errors": errors}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=64)
    args = ap.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install wrk nginx-light)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tmp.chmod(0o755)  # nginx workers run as an unprivileged user and must read the file
        (tmp / "www").mkdir()
        (tmp / "www" / "live.json").write_text('{"live":true}')
        nport = free_port()
        (tmp / "nginx.conf").write_text(NGINX_CONF.format(tmp=tmp, port=nport))
        nginx = subprocess.Popen(["nginx", "-c", str(tmp / "nginx.conf"), "-g", "daemon off;"])
        server = subprocess.Popen([BINARY, "serve", "--port", "0", "--log-level", "warning"], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        try:
            url = next(m.group(1) for line in server.stdout if (m := re.search(r"listening on (http://\S+)", line)))
            time.sleep(0.5)
            script = tmp / "post.lua"
            script.write_text(POST_LUA % (ROOT / "Tests" / "fixtures" / "digits-one.json").read_text().strip())
            rows = [("nginx static file", wrk(f"http://127.0.0.1:{nport}/live.json", args.connections, args.duration)),
                    ("sparse-serve /v2/health/live", wrk(f"{url}/v2/health/live", args.connections, args.duration)),
                    ("sparse-serve digits infer", wrk(f"{url}/v2/models/digits/infer", args.connections, args.duration, script))]
            base = rows[0][1]["rps"]
            print(f"# wrk -t2 -c{args.connections} -d{args.duration}s, keep-alive, all on one 2-core machine")
            print(f"{'target':<30} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'errors':>7} {'vs nginx':>9}")
            for name, r in rows:
                if r["non2xx"] or r["errors"]:
                    print(f"  warning: {name}: {r['non2xx']} non-2xx, {r['errors']} socket errors")
                print(f"{name:<30} {r['rps']:>9.0f} {r['p50']:>8.3f} {r['p99']:>8.3f} {r['non2xx']:>8} {r['errors']:>7} {r['rps'] / base:>9.2f}")
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
            nginx.send_signal(signal.SIGQUIT)
            nginx.wait(timeout=10)


if __name__ == "__main__":
    main()
