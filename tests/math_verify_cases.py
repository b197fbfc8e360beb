"""Math-Verify's own published test cases (``tests/test_all.py`` of the installed version's
source distribution), as (test, gold, pred, expected) rows: the cases its authors wrote from
real model outputs, used here as an external check of the stated-answer reading."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path


def fetch(cache: Path) -> Path:
    """The test file of the installed Math-Verify release, downloaded once into ``cache``."""
    release = version("math-verify")
    target = cache / f"math-verify-{release}-test_all.py"
    if not target.exists():
        download = cache / f".math-verify-{release}"
        subprocess.run([sys.executable, "-m", "pip", "download", f"math-verify=={release}", "--no-binary", ":all:",
                        "--no-deps", "-q", "-d", str(download)],
                       check=True, capture_output=True, timeout=300)
        archive = next(download.glob("math_verify-*.tar.gz"))
        with tarfile.open(archive) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith("/tests/test_all.py"))
            data = tar.extractfile(member).read()
        cache.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return target


def cases(test_file: Path) -> list[tuple[str, str, str, int]]:
    """Every (test function, gold, pred, expected) of the file's parametrized tests that
    compare a gold with a prediction."""
    spec = importlib.util.spec_from_file_location("math_verify_published_tests", test_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = []
    for name, func in sorted(vars(module).items()):
        for mark in getattr(func, "pytestmark", []):
            if mark.name != "parametrize":
                continue
            names = [n.strip() for n in mark.args[0].split(",")] if isinstance(mark.args[0], str) else list(mark.args[0])
            if not {"gold", "pred", "expected"} <= set(names):
                continue
            for values in mark.args[1]:
                row = dict(zip(names, getattr(values, "values", values)))
                out.append((name, row["gold"], row["pred"], int(row["expected"])))
    return out
