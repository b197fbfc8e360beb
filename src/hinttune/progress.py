"""Progress for long stages: done/total, generated tokens per second, elapsed and ETA."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

console = Console(stderr=True)


class TokensPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        tokens = task.fields.get("tokens", 0)
        rate = tokens / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.0f} tok/s", style="cyan")


@contextmanager
def stage_progress(description: str, total: int, transient: bool = False) -> Iterator["StageProgress"]:
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TokensPerSecond(), TimeElapsedColumn(), TextColumn("ETA"),
                        TimeRemainingColumn(), console=console, transient=transient)
    with progress:
        task = progress.add_task(description, total=total, tokens=0)
        yield StageProgress(progress, task)


class StageProgress:
    def __init__(self, progress: Progress, task: int):
        self.progress, self.task, self.tokens = progress, task, 0

    def advance(self, items: int = 1, tokens: int = 0) -> None:
        self.tokens += tokens
        self.progress.update(self.task, advance=items, tokens=self.tokens)
