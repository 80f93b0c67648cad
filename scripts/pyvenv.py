"""Runs a helper script inside its own throwaway venv (made on first use) when the packages it
needs are not importable in the current interpreter."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path


def run_in_venv(venv: Path, packages, modules):
    """Returns when every module in `modules` imports; otherwise installs `packages` into `venv`
    and re-executes the calling script there (once)."""
    if all(importlib.util.find_spec(m) is not None for m in modules):
        return
    marker = "SPARSESERVE_VENV_REEXEC"
    if os.environ.get(marker):
        sys.exit(f"{', '.join(modules)} still missing in {venv}")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    # `python -m pip`, not bin/pip: a copied venv's pip script still names the original's interpreter.
    subprocess.check_call([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages])
    os.environ[marker] = "1"
    os.execv(str(python), [str(python), sys.argv[0]] + sys.argv[1:])
