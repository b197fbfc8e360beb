"""Progress for long stages: done/total, generated tokens per second, elapsed and ETA.

On a terminal this is a live bar. Off a terminal (a scheduler's log file, CI) a bar would
print nothing useful, so plain lines are written instead: one when a stage starts, one every
``HINTTUNE_PROGRESS_EVERY`` seconds (default 30) while it runs, and one when it ends."""

from __future__ import annotations

import os
import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text


OFF_TERMINAL_WIDTH = 250


def _console() -> Console:
    """Off a terminal (a scheduler's log file, a pipe, CI) rich would lay tables out for 80
    columns and cut their headers ("benchm…"); there they are printed whole (COLUMNS, when
    set, still decides)."""
    terminal = Console(stderr=True)
    if terminal.is_terminal or os.environ.get("COLUMNS"):
        return terminal
    return Console(stderr=True, width=OFF_TERMINAL_WIDTH)


console = _console()


def show(renderable: object) -> None:
    """Print a table, or a line of text, for a person: a table's caption follows it as text of
    its own, wrapped at words to the screen (in a log: one line), never squeezed under the
    table's width and broken mid-phrase."""
    from rich.table import Table

    if isinstance(renderable, str):
        console.print(renderable, soft_wrap=not console.is_terminal, highlight=False)
        return
    caption = renderable.caption if isinstance(renderable, Table) else None
    if caption:
        renderable.caption = None
    console.print(renderable)
    if caption:
        console.print(caption, style="dim", soft_wrap=not console.is_terminal, highlight=False)
        renderable.caption = caption


def _rate(tokens: int, seconds: float) -> str:
    return f"{tokens / seconds:,.0f} tok/s" if seconds > 0 else "- tok/s"


class TokensPerSecond(ProgressColumn):
    """Generated tokens over the time since the stage started (backends that finish whole
    batches at once report in steps, so the rate is the average so far, not instantaneous)."""

    def render(self, task: Task) -> Text:
        started = task.fields.get("started")
        elapsed = (time.monotonic() - started) if started else (task.elapsed or 0.0)
        if task.finished and task.fields.get("ended"):
            elapsed = task.fields["ended"] - started
        return Text(_rate(task.fields.get("tokens", 0), elapsed), style="cyan")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class StageProgress:
    def __init__(self, description: str, total: int, progress: Progress | None = None,
                 task: int | None = None, every: float = 30.0):
        self.description, self.total = description, total
        self.progress, self.task = progress, task
        self.done, self.tokens, self.pending = 0, 0, 0
        self.started = self.last_line = time.monotonic()
        self.every = every

    def advance(self, items: int = 1, tokens: int = 0) -> None:
        self.done += items
        self.tokens += tokens
        if self.progress is not None:
            fields = {"ended": time.monotonic()} if self.done >= self.total else {}
            self.progress.update(self.task, advance=items, tokens=self.tokens + self.pending, **fields)
        elif time.monotonic() - self.last_line >= self.every:
            self.line()

    def grow(self, items: int) -> None:
        """More work joined the stage (a continuous stage learns its size as it goes)."""
        self.total += items
        if self.progress is not None:
            self.progress.update(self.task, total=self.total)

    def live(self, pending_tokens: int) -> None:
        """Tokens generated so far by requests still running (a batch in progress)."""
        self.pending = pending_tokens
        if self.progress is not None:
            self.progress.update(self.task, tokens=self.tokens + self.pending)
        elif time.monotonic() - self.last_line >= self.every:
            self.line()

    def line(self, final: bool = False) -> None:
        """One plain progress line (off a terminal)."""
        self.last_line = now = time.monotonic()
        elapsed = now - self.started
        share = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = (f"{self.description}: {self.done}/{self.total}{share} · "
                f"{_rate(self.tokens + self.pending, elapsed)} · elapsed {_clock(elapsed)}")
        if not final and self.done:
            text += f" · ETA {_clock(elapsed / self.done * (self.total - self.done))}"
        console.print(text + (" · done" if final and self.done >= self.total else ""),
                      highlight=False, soft_wrap=True)


@contextmanager
def stage_progress(description: str, total: int, transient: bool = False) -> Iterator[StageProgress]:
    with stages_progress([description], total, transient) as bars:
        yield bars[description]


@contextmanager
def stages_progress(descriptions: list[str], total: int = 0,
                    transient: bool = False) -> Iterator[dict[str, StageProgress]]:
    """One bar per stage, shown together (stages that run at the same time, as the
    construction's per-problem pipeline does): by description."""
    if not console.is_terminal:
        every = float(os.environ.get("HINTTUNE_PROGRESS_EVERY", "30"))
        stages = {d: StageProgress(d, total, every=every) for d in descriptions}
        for stage in stages.values():
            stage.line()
        try:
            yield stages
        finally:
            for stage in stages.values():
                stage.line(final=True)
        return
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TokensPerSecond(), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=console, transient=transient)
    with progress:
        yield {d: StageProgress(d, total, progress, progress.add_task(d, total=total, tokens=0,
                                                                      started=time.monotonic()))
               for d in descriptions}
