"""Signals and child processes: a scheduler's SIGTERM (Slurm, Kubernetes and systemd send it
before killing) is handled like Ctrl-C, and helper processes die with the process that
started them, even when it is killed with SIGKILL and cannot stop them itself."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C's KeyboardInterrupt would be: every
    path that saves what came back on Ctrl-C (committing held results, stopping workers and
    engines) runs for it too."""

    exit_code = 128 + signal.SIGTERM


def terminate_gracefully() -> None:
    """Turn the first SIGTERM into ``Terminated`` (later ones are ignored while the first is
    being handled: the clean-up must not be interrupted by the same request). Main thread only."""
    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, handler)
        logging.getLogger("asyncio").addFilter(_quiet_on_stop)


def _quiet_on_stop(record: logging.LogRecord) -> bool:
    """Drop asyncio's "Task exception was never retrieved" (with a traceback) for a task that
    SIGTERM or Ctrl-C stopped: the signal lands in whichever task runs, the run stops on it
    and says so in one line; a task it ended is no error of its own."""
    error = record.exc_info[1] if record.exc_info else None
    return not isinstance(error, KeyboardInterrupt)


def die_with_parent() -> None:
    """Call first thing in a helper process: it is killed when its parent dies. On Linux the
    kernel does it (PR_SET_PDEATHSIG); elsewhere a thread watches the parent's pid. Ctrl-C is
    the parent's to handle: the helper ignores SIGINT and is stopped by its parent."""
    parent = os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent or parent == 1:  # the parent died before we could ask
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="hinttune-parent-watch").start()
