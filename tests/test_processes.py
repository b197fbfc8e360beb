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


def test_sigterm_inside_an_asyncio_task_stops_with_no_traceback(tmp_path):
    """The signal lands in whichever task runs; asyncio then logs "Task exception was never
    retrieved" with a traceback when that task is collected, after the run said it stopped."""
    script = tmp_path / "stop.py"
    script.write_text(
        "import asyncio, gc, os, signal\n"
        "from hinttune.core.processes import Terminated, terminate_gracefully\n"
        "terminate_gracefully()\n"
        "async def victim():\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    await asyncio.sleep(5)\n"
        "async def main():\n"
        "    asyncio.create_task(victim())\n"
        "    await asyncio.sleep(5)\n"
        "try:\n"
        "    asyncio.run(main())\n"
        "except Terminated:\n"
        "    print('stopped')\n"
        "gc.collect()\n")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "stopped", done.stdout + done.stderr
    assert "never retrieved" not in done.stderr and "Traceback" not in done.stderr, done.stderr
