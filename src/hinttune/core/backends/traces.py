"""Think attempts from a file of traces instead of a model (``backend: traces``).

Every row gives a problem and its output - reasoning and answer fields (s1K's
``thinking_trajectories`` and ``attempt``), or one field with the whole output. A request is
answered with the trace of the problem its user message was rendered from (matched by text,
whitespace aside); the sample-th request of a problem gets its sample-th row. A problem with no
trace fails with a cause naming the file - the problem is incomplete, never given an empty
trace. A malformed row stops the run with its file, record and field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from hinttune.core.backends.base import Backend, Generation, Request, failed
from hinttune.core.config import TracesModel
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import BadRecord, read_records

PROBLEM_ALIASES = ("problem", "question")
REASONING_ALIASES = ("thinking_trajectories", "deepseek_thinking_trajectory", "reasoning",
                     "reasoning_content", "thinking")
ANSWER_ALIASES = ("attempt", "deepseek_attempt", "response")
IMPORTED = "imported"  # the finish reason of every imported trace


def _norm(text: str) -> str:
    return " ".join(text.split())


class TracesBackend(Backend):
    name = "traces"
    cfg: TracesModel

    def __init__(self, cfg: TracesModel):
        super().__init__(cfg)
        self._outputs: dict[str, list[str]] | None = None

    def identity(self) -> dict[str, Any]:
        # a changed file is another set of traces: its size and time are part of every key
        path = Path(self.cfg.source).expanduser()
        stamp = [path.stat().st_size, int(path.stat().st_mtime)] if path.is_file() else None
        return {"backend": self.name, "source": self.cfg.source, "split": self.cfg.split,
                "file": stamp, "fields": [self.cfg.problem_field, self.cfg.reasoning_field,
                                          self.cfg.answer_field, self.cfg.output_field]}

    def prompt_text(self, request: Request) -> str:
        return "".join(f"<|{m['role']}|>{m['content']}\n" for m in request.messages)

    def _load(self) -> dict[str, list[str]]:
        if self._outputs is None:
            records, where, places = read_records(self.cfg.source, self.cfg.split)
            outputs: dict[str, list[str]] = {}
            for record, place in zip(records, places):
                problem, output = self._row(record, f"{where}: {place}")
                outputs.setdefault(_norm(problem), []).append(output)
            self._outputs = outputs
        return self._outputs

    def _row(self, record: Any, where: str) -> tuple[str, str]:
        if isinstance(record, BadRecord):
            raise HinttuneError(f"{where}: {record.why}")
        if not isinstance(record, dict):
            raise HinttuneError(f"{where}: expected an object, got {type(record).__name__}")
        problem = self._field(record, where, self.cfg.problem_field, PROBLEM_ALIASES, "problem")
        if self.cfg.output_field:
            return problem, self._field(record, where, self.cfg.output_field, (), "output")
        reasoning = self._field(record, where, self.cfg.reasoning_field, REASONING_ALIASES, "reasoning")
        answer = self._field(record, where, self.cfg.answer_field, ANSWER_ALIASES, "answer")
        return problem, f"<think>\n{reasoning.strip()}\n</think>\n\n{answer.strip()}"

    @staticmethod
    def _field(record: dict, where: str, wanted: str | None, aliases: tuple[str, ...], role: str) -> str:
        name = wanted or next((a for a in aliases if a in record), None)
        setting = f"{role}_field"
        if name is None or name not in record:
            looked = f"field {name!r}" if name else f"a field named {', '.join(aliases)}"
            raise HinttuneError(f"{where}: no {role} ({looked} is missing; set think.{setting})")
        value = record[name]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            value = "\n\n".join(value)  # s1K keeps each trajectory as a list of strings
        if not isinstance(value, str) or not value.strip():
            raise HinttuneError(f"{where}: field {name!r} ({role}) is empty or not text: {value!r:.60}")
        return value

    slots = 1024  # reading a file: no limit worth the name

    def batch_size(self) -> int:
        return self.slots

    def generate(self, requests: list[Request]) -> Iterator[tuple[int, list[Generation]]]:
        outputs = self._load()
        template = self.cfg.prompt_template
        head, _, tail = template.partition("{problem}")
        for index, request in enumerate(requests):
            user = next((m["content"] for m in reversed(request.messages) if m["role"] == "user"), "")
            problem = user[len(head):len(user) - len(tail)] if user.startswith(head) and user.endswith(tail) else user
            found = outputs.get(_norm(problem), [])
            if request.sample >= len(found):
                what = "no trace" if not found else f"{len(found)} trace(s), not a sample {request.sample}"
                yield index, [failed(f"{what} for this problem in {self.cfg.source}")] * request.n
                continue
            text = found[request.sample]
            prefix = request.continuation or ""
            if prefix and text.startswith(prefix):  # the stored record puts the prefix back
                text = text[len(prefix):]
            # no token counts: the generator's are not in the file
            yield index, [Generation(text, IMPORTED)] * request.n

