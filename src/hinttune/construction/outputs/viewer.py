"""``hinttune view``: a run as a page to look at, not files to read.

Writes ``RUN_DIR/view/``: ``index.html`` with the state mix and K* histogram, and a table of
every problem (filters: state, K*, incomplete cause, grader; search), and one small script per
problem (``problems/N.js``) that the page loads when the problem is opened: the think trace in
its episodes with the K* cut marked, every probe continuation (k, verdict, grader, tokens), the
exported target exactly as written, and the problem's state under each baseline and further
probe beside Hint Tuning's. Loading a problem's data only when it is opened keeps a run of
1,000 problems with 40 episodes each fast to open; scripts (not fetches) keep it working from
``file://``. ``--serve`` serves the folder on localhost. Nothing in the run is changed.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

from hinttune.core.errors import HinttuneError
from hinttune.core.files import atomic_dir, read_jsonl, write_text

TEXT_LIMIT = 200_000  # characters kept of one text in the page (longer ones say so)


def _rows(path: Path) -> list[dict[str, Any]]:
    return [row for _, row in read_jsonl(path)] if path.exists() else []


def _clip(text: str | None) -> str:
    text = text or ""
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + f"\n[… {len(text) - TEXT_LIMIT:,} more characters]"


def _datasets(export: Path) -> dict[str, Path]:
    """Hint Tuning's dataset and every baseline's and further probe's, by label."""
    found = {}
    main = sorted(export.glob("*.meta.jsonl"))
    if main:
        found["hint-tuning"] = main[0]
    for kind in ("baselines", "probes"):
        for meta in sorted((export / kind).glob("*/*.meta.jsonl")):
            found[f"{kind[:-1]}:{meta.parent.name}"] = meta
    return found


def collect(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(overview, per-problem details) of a run, read from its files and store."""
    from hinttune.core.store import RunStore

    if not (run_dir / "store.sqlite").exists() or not (run_dir / "problems.jsonl").exists():
        raise HinttuneError(f"{run_dir}: not a run directory (no store.sqlite and problems.jsonl)")
    problems = _rows(run_dir / "problems.jsonl")
    episodes = {r["id"]: r["episodes"] for r in _rows(run_dir / "segments.jsonl")}
    export = run_dir / "export"
    datasets = _datasets(export)
    states: dict[str, dict[str, Any]] = {label: {} for label in datasets}
    targets: dict[str, str] = {}
    for label, meta in datasets.items():
        rows = _rows(meta)
        states[label] = {r["id"]: r for r in rows}
        if label == "hint-tuning":
            records_file = meta.with_name(meta.name.replace(".meta.jsonl", ".json"))
            records = json.loads(records_file.read_text(encoding="utf-8")) if records_file.exists() else []
            targets = {row["id"]: rec.get("output", "") for row, rec in zip(rows, records)}
    excluded = {r["id"]: r for r in _rows(export / "excluded.jsonl")}
    with RunStore(run_dir, readonly=True) as store:
        searches = {pid: body for pid, (_, body) in store.stage_results("probe").items()}
        texts = store.texts(a[1] for body in searches.values() for a in body["attempts"])
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text(encoding="utf-8")) if summary_path.exists() else {}
    overview_rows, details = [], []
    for n, p in enumerate(problems):
        pid = p["id"]
        mine = states.get("hint-tuning", {}).get(pid)
        left_out = excluded.get(pid)
        state = mine["state"] if mine else (left_out or {}).get("state", "not built")
        search = searches.get(pid)
        attempts = [{"k": k, "sample": sample, "correct": correct, "grader": grader, "detail": detail,
                     "tokens": completion, "text": _clip(texts.get(key))}
                    for k, key, sample, correct, grader, detail, completion, _ in (search or {}).get("attempts", [])]
        k_star = mine.get("k_star") if mine else (search or {}).get("k_star")
        graders = sorted({a["grader"] for a in attempts})
        overview_rows.append({"n": n, "id": pid, "problem": p["problem"][:300], "state": state, "k_star": k_star,
                              "episodes": len(episodes.get(pid, [])), "probes": len(attempts),
                              "cause": (left_out or {}).get("reason") or "", "graders": graders})
        details.append({"n": n, "id": pid, "problem": _clip(p["problem"]), "gold": _clip(p.get("gold_answer")),
                        "state": state, "k_star": k_star, "episodes": [_clip(e) for e in episodes.get(pid, [])],
                        "attempts": attempts, "target": _clip(targets.get(pid)),
                        "cause": (left_out or {}).get("reason") or "",
                        "elsewhere": {label: {"state": rows[pid].get("state"), "k_star": rows[pid].get("k_star"),
                                              "output_tokens": rows[pid].get("output_tokens")}
                                      for label, rows in states.items() if pid in rows}})
    overview = {"run": str(run_dir), "summary": {k: summary.get(k) for k in ("problems", "records", "states", "k_star",
                                                                           "token_unit", "versions")},
                "datasets": list(datasets), "rows": overview_rows}
    return overview, details


def script_json(value: Any) -> str:
    """JSON that is safe inside an HTML ``<script>``: ``<`` and ``>`` (so neither ``</script>``
    nor ``<!--`` - which makes the parser swallow the rest of the page - can occur), ``&`` and
    the JavaScript line separators are written as escapes."""
    text = json.dumps(value, ensure_ascii=False)
    for char in "<>&\u2028\u2029":
        text = text.replace(char, f"\\u{ord(char):04x}")
    return text


def write_view(run_dir: Path, out: Path | None = None) -> Path:
    """Write the page and its per-problem scripts; returns index.html. The scripts are written
    into a fresh folder swapped in whole (linear in the run's size: no per-file fsync or
    leftover scan), then the page that loads them."""
    out = out or run_dir / "view"
    overview, details = collect(run_dir)
    page = resources.files("hinttune.construction.outputs").joinpath("viewer_page.html").read_text(encoding="utf-8")
    with atomic_dir(out / "problems") as folder:
        for detail in details:
            (folder / f"{detail['n']}.js").write_text(f"hinttuneProblem({script_json(detail)});\n",
                                                     encoding="utf-8")
    return write_text(out / "index.html", page.replace("/*OVERVIEW*/null", script_json(overview)))


def serve(folder: Path, port: int) -> None:
    """Serve the view folder on localhost until interrupted."""
    import functools
    import http.server

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as httpd:
        from hinttune.core.progress import console

        console.print(f"serving {folder} at http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)",
                      highlight=False)
        httpd.serve_forever()
