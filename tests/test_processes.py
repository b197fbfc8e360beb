"""SIGTERM is handled like Ctrl-C, and helper processes never outlive their parent."""

import os
import signal
import subprocess
import sys
import textwrap
import time


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_helper_dies_with_its_parent_even_on_sigkill(tmp_path):
    """A grading worker stuck in a long check: SIGKILL its parent, the worker goes too."""
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import multiprocessing, sys, time
        sys.path.insert(0, {os.path.dirname(os.path.dirname(__file__)) + '/src'!r})
        from hinttune.core.processes import die_with_parent

        def stuck():
            die_with_parent()
            while True:  # a hostile expression: never returns, never reads its pipe
                pass

        if __name__ == "__main__":
            child = multiprocessing.get_context("spawn").Process(target=stuck, daemon=True)
            child.start()
            print(child.pid, flush=True)
            time.sleep(60)
    """))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    time.sleep(1.0)
    assert _alive(child)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 10
    while time.time() < deadline and _alive(child):
        time.sleep(0.1)
    assert not _alive(child)
