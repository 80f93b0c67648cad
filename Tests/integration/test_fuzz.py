"""Fuzz targets: the committed corpora replay cleanly, and a bounded libFuzzer run finds nothing."""
import os
import pathlib
import shutil
import subprocess

import pytest

from conftest import ROOT

CORPUS = ROOT / "Fuzz" / "corpus"
TARGETS = sorted(p.name for p in CORPUS.iterdir() if p.is_dir())
REPLAY = ROOT / ".build" / "debug" / "sparse-fuzz"
FUZZER = pathlib.Path(os.environ.get("SPARSESERVE_FUZZER", ROOT / ".build-fuzz" / "debug" / "sparse-fuzz"))
REQUIRED = bool(os.environ.get("SPARSESERVE_REQUIRE_ALL"))


@pytest.mark.skipif(not REPLAY.exists() and not REQUIRED, reason="swift build --product sparse-fuzz first")
def test_corpus_replays_without_a_crash():
    r = subprocess.run([str(REPLAY), str(CORPUS)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    for target in TARGETS:
        assert f"{target}: " in r.stdout


@pytest.mark.skipif(not FUZZER.exists() and not REQUIRED, reason="fuzz build missing (see Fuzz/README.md)")
@pytest.mark.parametrize("target", TARGETS)
def test_bounded_fuzz_run_finds_nothing(target, tmp_path):
    seconds = int(os.environ.get("SPARSESERVE_FUZZ_SECONDS", "60"))
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS / target, corpus)
    env = dict(os.environ, SPARSESERVE_FUZZ_TARGET=target)
    r = subprocess.run([str(FUZZER), f"-max_total_time={seconds}", "-max_len=4096", "-rss_limit_mb=3072",
                        "-timeout=10", f"-artifact_prefix={tmp_path}/", str(corpus)],
                       capture_output=True, text=True, timeout=seconds + 120, env=env)
    artifacts = [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "leak-", "timeout-", "oom-"))]
    assert r.returncode == 0 and not artifacts, f"{artifacts}\n" + r.stderr[-4000:]
    assert "Done" in r.stderr or "DONE" in r.stderr
