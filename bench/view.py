"""`hinttune view` at scale: the time to write a run's page, its size, and how soon a headless
Chromium can use it (the page's own clock, from navigation start to its table drawn), for runs
of 1,000 and 10,000 problems built with an instant (fake) backend.

    python bench/view.py                          # 1,000 and 10,000 problems
    python bench/view.py --problems 200           # smaller

Targets: a 10,000-problem run's view written in <= 15 s, its page usable in <= 3 s. Chromium
(Debian: apt-get install chromium) is optional; without it the browser column says so.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import write_config  # noqa: E402  (the same workload as the scale bench)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def browser_ready_ms(index: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        return "no chromium"
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           index.resolve().as_uri()], capture_output=True, text=True, timeout=300)
    found = re.search(r'data-ready-ms="(\d+)"', done.stdout)
    return f"{int(found.group(1)) / 1000:.2f} s" if found else f"not ready ({done.stderr[-200:]!r})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--episodes", type=int, default=40)
    args = parser.parse_args()
    from hinttune.construction.outputs.viewer import write_view

    print("| problems | build (s) | view written (s) | CPU (s) | view size (MB) | page usable in Chromium |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for count in args.problems:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            config = write_config(folder, count, args.episodes)
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "hinttune", "run", "-c", str(config)],
                           check=True, capture_output=True)
            built = time.perf_counter() - started
            started, cpu = time.perf_counter(), time.process_time()
            index = write_view(folder / "run")
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            size = folder_size(index.parent) / 1e6
            print(f"| {count:,} | {built:.1f} | {wall:.2f} | {cpu:.2f} | {size:.1f} | {browser_ready_ms(index)} |",
                  flush=True)


if __name__ == "__main__":
    main()
