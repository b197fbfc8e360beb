"""Finished probe searches, remembered: a re-run recognises them without replaying them.

Replaying a search from the store is exact but not free (every prompt rendered and hashed
again, every record decoded, every verdict looked up: seconds per thousand problems). So each
search that finished - K* found, or no k worked - is stored with a fingerprint of everything
that decided it: the problem, its trace's episodes, the searched range, the instruct model
(weights included), the probe and grading settings and the run seed. A later run whose
fingerprint matches takes the outcome as it is; any change, or a generation no longer in the
store, replays that problem alone. A search that could not finish is never remembered: the
next run retries it.
"""

from __future__ import annotations

from typing import Any

from hinttune.core.grading import Grader

from hinttune.construction.probe.search import STAGE, ProbeAttempt, ProbeOutcome, ProbeSetup, ProbeTarget
from hinttune.core.grading import Verdict
from hinttune.core.store import RunStore, stable_hash

VERSION = 2  # bump when what a fingerprint covers, or the stored body, changes


def common(setup: ProbeSetup, grader: Grader) -> dict[str, Any]:
    """What every search of one instruct model in one run shares."""
    return {"instruct": setup.instruct.backend.identity(), "model": setup.instruct.cfg.model_dump(mode="json"),
            "probe": setup.probe.model_dump(mode="json"), "grading": grader.settings,
            "seed": setup.seed, "official": setup.policy.official}


class Memo:
    """The searches an earlier run finished, read once; a search that finishes now is
    remembered at once, written behind with the generations (a kill that loses it leaves
    the generations it names, from which the next run replays that search)."""

    def __init__(self, store: RunStore, role: str, shared: dict[str, Any]):
        self.store, self.role, self.shared = store, role, shared
        self.known = store.stage_results(_stage(role))

    def fingerprint(self, target: ProbeTarget) -> str:
        return fingerprints(self.shared, [target])[target.problem.id]

    def recall(self, target: ProbeTarget) -> ProbeOutcome | None:
        pid = target.problem.id
        found = self.known.get(pid)
        if found is None or found[0] != self.fingerprint(target):
            return None
        return recall(self.store, {pid: found[0]}, self.role, {pid: found}).get(pid)

    def remember(self, target: ProbeTarget, outcome: ProbeOutcome) -> None:
        pid = target.problem.id
        remember(self.store, {pid: self.fingerprint(target)}, {pid: outcome}, self.role)


def fingerprints(common: dict[str, Any], targets: list[ProbeTarget]) -> dict[str, str]:
    """The fingerprint of each target's search; ``common`` holds what all searches share."""
    shared = stable_hash(VERSION, common)
    return {t.problem.id: stable_hash(shared, t.problem.id, t.problem.problem, t.problem.gold_answer,
                                      t.episodes, t.first_k, t.last_k, t.lead, t.close) for t in targets}


def _stage(role: str) -> str:
    return STAGE if role == "instruct" else f"{STAGE}/{role}"


def recall(store: RunStore, prints: dict[str, str], role: str = "instruct",
           stored: dict[str, tuple[str, Any]] | None = None) -> dict[str, ProbeOutcome]:
    """The remembered outcomes whose fingerprint still matches (and whose generations are all
    still in the store); ``stored``: the stage's results already read."""
    stored = store.stage_results(_stage(role)) if stored is None else stored
    bodies = {pid: body for pid, (fingerprint, body) in stored.items() if prints.get(pid) == fingerprint}
    texts = store.texts(a[1] for body in bodies.values() for a in body["attempts"])
    out = {}
    for pid, body in bodies.items():
        if all(a[1] in texts for a in body["attempts"]):
            out[pid] = _outcome(pid, body, texts)
    return out


def remember(store: RunStore, prints: dict[str, str], outcomes: dict[str, ProbeOutcome],
             role: str = "instruct") -> None:
    """Store every finished outcome with its fingerprint, in one transaction."""
    store.put_stage_results(_stage(role), [(pid, prints[pid], _body(o)) for pid, o in outcomes.items()
                                    if o.incomplete is None and pid in prints])


def _body(o: ProbeOutcome) -> dict[str, Any]:
    # attempts as rows, not objects: a thousand problems hold some twenty thousand of them
    return {"n": o.n, "k_star": o.k_star, "rounds": o.rounds, "ahead": o.ahead,
            "attempts": [[a.k, a.key, a.sample, a.verdict.correct, a.verdict.grader, a.verdict.detail,
                          a.completion_tokens, a.prompt_tokens] for a in o.attempts]}


def _outcome(pid: str, body: dict[str, Any], texts: dict[str, str]) -> ProbeOutcome:
    attempts = [ProbeAttempt(k, key, texts[key], Verdict(correct, grader, detail), completion, prompt, sample)
                for k, key, sample, correct, grader, detail, completion, prompt in body["attempts"]]
    return ProbeOutcome(pid, body["n"], body["k_star"], attempts, rounds=body["rounds"],
                        ahead=body["ahead"])
