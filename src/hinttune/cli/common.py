"""What every command shares: the app, its options (declared once), exit codes, and how a
user error becomes one line."""

from __future__ import annotations

import errno
import functools
import sqlite3
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.markup import escape

from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console, show

def _flags_take_no_value() -> None:
    """Recent typer prints a type after every option, flags too ("--lora <bool>", "--help
    <bool>"), as if they took a value: a flag's help shows none."""
    original = getattr(typer.core.TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "_hinttune", False):
        return

    def display_type_rich(self, ctx):  # type: ignore[no-untyped-def]
        return None if getattr(self, "is_flag", False) and not getattr(self, "count", False) else original(self, ctx)

    display_type_rich._hinttune = True  # type: ignore[attr-defined]
    typer.core.TyperOption.display_type_rich = display_type_rich


_flags_take_no_value()
app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="rich",
                  help="Hint Tuning: difficulty-adaptive reasoning datasets, built resumably.")

ConfigOpt = typer.Option("demo", "--config", "-c", help="YAML config file or preset name "
                         "(see `hinttune presets`).")
SetOpt = typer.Option(None, "--set", "-s", help="Override any config field: "
                      "--set think.sampling.temperature=0.6 (repeatable).")
RunDirOpt = typer.Option(None, "--run-dir", "-o", help="Run directory (overrides run_dir).")
ProblemsOpt = typer.Option(None, "--problems", "-p", help="Problem source (overrides "
                           "problems.source): a .json/.jsonl/.parquet file, a dataset folder or "
                           "a hub dataset name.")
TrainSetOpt = typer.Option(None, "--set", "-s", help="Override any training setting: "
                           "--set learning_rate=2e-5 --set max_length=16384 (repeatable).")
EvalSetOpt = typer.Option(None, "--set", "-s", help="Override any eval setting: "
                          "--set sampling.max_tokens=16384 --set limit=50 (repeatable).")
VerboseOpt = typer.Option(False, "--verbose", "-v", help="Show info logs on screen.")


EXIT_USAGE = 2  # bad config or input, missing extra, unreachable server: one line says why
EXIT_INCOMPLETE = 3  # the run finished, but some problems are incomplete (failed or undecided)
EXIT_INTERRUPTED = 130


def storage_error(exc: Exception) -> str | None:
    """One line for a disk that is full or read-only (None: not such an error). The run
    store commits whole records, so what was saved before stays intact."""
    text = str(exc).lower()
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    # SQLite says "disk I/O error" when a write fails for want of space as often as "full"
    if getattr(exc, "errno", None) == errno.ENOSPC or "disk is full" in text or "disk full" in text \
            or "disk i/o error" in text:
        how = " (SQLite: disk I/O error, most often a full disk)" if "i/o" in text else ""
        return (f"the disk is full{where}{how}: free some space and run the same command again; "
                "everything saved so far is intact")
    if getattr(exc, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM) or "readonly" in text \
            or "read-only" in text or "unable to open database" in text:
        return (f"cannot write{where}: the run directory is read-only or not yours "
                f"({exc}); choose another with --run-dir")
    return None


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become one red line and exit code 2, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hinttune.core.processes import Terminated, terminate_gracefully

        terminate_gracefully()
        try:
            return fn(*args, **kwargs)
        except HinttuneError as exc:
            from hinttune.core.secrets import redact

            console.print(f"[bold red]error:[/] {escape(redact(str(exc)))}", highlight=False,
                          soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
        except (OSError, sqlite3.DatabaseError) as exc:
            from hinttune.core.store import damaged, damaged_message

            message = storage_error(exc)
            if message is None and damaged(exc):  # found damaged after it opened
                message = damaged_message("RUN_DIR/store.sqlite", exc)
            if message is None:
                raise
            console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_USAGE) from None
        except Terminated:
            console.print("[yellow]terminated[/] (SIGTERM): everything finished so far is saved; "
                          "run the same command again to resume.")
            raise typer.Exit(Terminated.exit_code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]: everything finished so far is saved; run the "
                          "same command again to resume.")
            raise typer.Exit(EXIT_INTERRUPTED) from None
    return wrapper


def resolve(config: str, sets: Optional[List[str]], run_dir: Optional[Path],
            problems: Optional[str]):
    from hinttune.core.config import load_config

    overrides = list(sets or [])
    if run_dir is not None:
        overrides.append(f"run_dir={run_dir}")
    if problems is not None:
        overrides.append(f"problems.source={problems}")
        chosen = any(o.partition("=")[0].strip() == "run_dir" for o in overrides)
        if not chosen and not Path(config).is_file():
            # a preset's run directory belongs to its own problems: yours get their own
            overrides.append(f"run_dir={default_run_dir(problems)}")
    return load_config(config, overrides)


def default_run_dir(problems: str) -> Path:
    """runs/NAME for a problems file or dataset (NAME: the file's stem, or the dataset's name)."""
    import re

    path = Path(problems.rstrip("/"))
    name = path.stem if path.suffix.lower() in (".json", ".jsonl", ".csv", ".parquet") else path.name
    return Path("runs") / (re.sub(r"[^A-Za-z0-9._-]+", "-", name.partition(":")[0]).strip("-.") or "problems")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"hinttune {version('hinttune')}")
        raise typer.Exit()


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Hint Tuning: difficulty-adaptive reasoning datasets, built resumably."""



def report_result(result: Any) -> None:
    """What a stage built, then its incomplete problems by cause (exit 3 when there are any)."""
    from hinttune.construction.outputs.report import stage_report
    from hinttune.construction.result import failure_causes

    for renderable in stage_report(result):
        show(renderable)
    causes = failure_causes(result)
    if causes:
        report_incomplete(causes)
        raise typer.Exit(EXIT_INCOMPLETE)


def report_incomplete(causes: Any) -> None:
    """The incomplete problems by cause, saying which the next run retries by itself and
    what to do about the others."""
    from hinttune.construction.states import retry_hint

    console.print(f"[bold yellow]{sum(causes.values())} problem(s) incomplete[/] (not in the dataset):",
                  highlight=False)
    hints = {}
    for cause, count in causes.most_common():
        hint = retry_hint(cause)
        console.print(f"  {count} × {escape(cause)}" + ("" if hint is None else "  [dim](not retried)[/]"),
                      highlight=False, soft_wrap=True)
        if hint is not None:
            hints[hint] = hints.get(hint, 0) + count
    retried = sum(causes.values()) - sum(hints.values())
    if retried:
        console.print(f"the next run retries {retried} of them by itself", highlight=False)
    for hint, count in hints.items():
        console.print(f"not retried by itself ({count}): {escape(hint)}", highlight=False, soft_wrap=True)
