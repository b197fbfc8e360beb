"""The two rule sets a run can follow - the paper's and the official scripts'
(``assemble.policy``) - where they differ before the states: which part of a reply is graded,
how a think trace is cut into episodes, and which problems are probed over which k. The
stages ask the run's policy; the state rules themselves are in ``states.py``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hinttune.construction.segmentation import trace_episodes
from hinttune.core.config import RunConfig, SegmentConfig
from hinttune.core.grading import Verdict
from hinttune.core.reasoning import graded_part, split_think

NO_ANSWER = Verdict(False, "no answer", "the reasoning never closed")


@dataclass(frozen=True)
class Policy:
    official: bool

    @classmethod
    def of(cls, cfg: RunConfig) -> "Policy":
        return cls(cfg.official)

    def attempt_answer(self, role: str, text: str) -> str | Verdict:
        """What is graded of a model's attempt: the think model's answer after ``</think>``
        (a trace cut before it has none: this verdict), the instruct model's whole reply. The
        official scripts grade the whole response of both."""
        if role != "think" or self.official:
            return text
        split = split_think(text)
        return split.answer if split.closed else NO_ANSWER

    def continuation_answer(self, text: str) -> str:
        """What is graded of a probe continuation: after its last ``</think>``; the official
        scripts grade the whole continuation, reasoning included."""
        return text if self.official else graded_part(text)

    def episodes(self, think_text: str, segment: SegmentConfig, tokenizer: Any = None) -> list[str]:
        """The think trace cut into episodes (the official scripts: their keywords, substring
        matching, reasoning to the last ``</think>``)."""
        return trace_episodes(think_text, segment, self.official, tokenizer)

    def probe_range(self, episodes: list[str], think: Verdict, instruct: Verdict) -> tuple[int, int] | None:
        """The k a problem's search covers, or None when it is not probed. The paper: problems
        the instruct model could not solve, k = 1..N-1 (K* = 0 is the attempt, success at N is
        Full-Hint anyway; an undecided grade leaves the problem incomplete, not probed). The
        official scripts: the think model's failures, k = 0..N."""
        if self.official:
            return (0, len(episodes)) if think.correct is False else None
        if instruct.correct is not False or len(episodes) < 2:
            return None
        return 1, len(episodes) - 1
