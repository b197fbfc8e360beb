"""``hinttune push``: a run's dataset on the Hugging Face Hub, with a card that says what it
is; ``hf://REPO_ID`` reads it back (``hinttune train -d hf://REPO_ID``).

Uploaded as a dataset repository: the Alpaca JSON (the default configuration, so
``datasets.load_dataset(REPO_ID)`` reads it), the messages JSONL, the meta sidecar (states, K*,
token counts, record digests), ``dataset_info.json`` for LLaMA-Factory, the ``datasets`` folder
(``hf/``) and a README card generated from the summary: state mix, K* histogram, models, probe
and grading settings, policy, hinttune version, how to train on it. Through ``huggingface_hub``
(its token: ``HF_TOKEN`` or ``huggingface-cli login``; ``HF_ENDPOINT`` for a private hub).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hinttune.core.errors import HinttuneError, missing_extra

SCHEME = "hf://"


def _hub() -> Any:
    try:
        import huggingface_hub
    except ImportError:
        raise missing_extra("huggingface_hub", "datasets") from None
    return huggingface_hub


def _failures() -> tuple[type[BaseException], ...]:
    """What the hub or the network raise: one line each, not a traceback."""
    from huggingface_hub.errors import HfHubHTTPError

    found: list[type[BaseException]] = [HfHubHTTPError, OSError]
    try:
        import httpx

        found.append(httpx.HTTPError)
    except ImportError:
        pass
    return tuple(found)


def _export(run_dir: Path) -> tuple[Path, str]:
    export = run_dir / "export"
    metas = sorted(export.glob("*.meta.jsonl"))
    if len(metas) != 1 or not (export / metas[0].name.replace(".meta.jsonl", ".json")).exists():
        raise HinttuneError(f"{run_dir}: no dataset export to push (run `hinttune run` or `hinttune export` first)")
    return export, metas[0].name[:-len(".meta.jsonl")]


def dataset_card(run_dir: Path, repo_id: str) -> str:
    """The README of the dataset repository, from the run's summary and configuration."""
    import yaml

    from hinttune import __version__

    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    _, name = _export(run_dir)
    states = summary.get("states", {})
    records = summary.get("records", 0)
    unit = summary.get("token_unit", "tokens")
    rows = "\n".join(f"| {state} | {count} | {summary.get('output_tokens', {}).get(state, {}).get('mean', 0):,.0f} |"
                     for state, count in states.items() if count)
    k_star = summary.get("k_star", {})
    peak = max(k_star.values(), default=1)
    histogram = "\n".join(f"K*={k:>3} {'█' * max(1, round(30 * v / peak))} {v}" for k, v in k_star.items()) or "(none)"
    think, instruct = config.get("think", {}), config.get("instruct", {})
    probe, grading = config.get("probe", {}), config.get("grading", {})
    policy = config.get("assemble", {}).get("policy", "paper")
    versions = ", ".join(f"{k} {v}" for k, v in (summary.get("versions") or {}).items())
    front = yaml.safe_dump({"configs": [{"config_name": "default", "data_files": [{"split": "train", "path": f"{name}.json"}]}],
                            "tags": ["hint-tuning", "reasoning", "sft", "hinttune"],
                            "task_categories": ["text-generation"]}, sort_keys=False)
    return f"""---
{front}---
# {repo_id.split('/')[-1]}

A Hint Tuning dataset (Fan et al., 2026, arXiv:2605.08665) built with hinttune {__version__}: each
problem's target keeps no reasoning, part of it or all of it, as the instruct model's need for a
hint says. {records} records from {summary.get('problems', '?')} problems.

| state | records | mean target {unit} |
| --- | ---: | ---: |
{rows}

K* (the episodes of reasoning a Sparse-Hint target keeps):

```
{histogram}
```

- think model: `{think.get('model')}` ({think.get('backend')}); instruct model (the difficulty probe):
  `{instruct.get('model')}` ({instruct.get('backend')})
- probing: strategy {probe.get('strategy', 'linear')}, {probe.get('samples_per_prefix', 1)} continuation(s) per prefix,
  success rule {probe.get('success_rule', 'any')}, up to {probe.get('max_tokens') or 'the instruct budget'} tokens
- grading: {grading.get('grader') or ('judge' if policy == 'official' else 'hybrid')}; policy: {policy}
- made with: {versions or 'hinttune ' + __version__}

Files: `{name}.json` (Alpaca: instruction, input, output), `{name}.messages.jsonl` (chat messages),
`{name}.meta.jsonl` (per record: id, state, K*, token counts, `record_sha256`), `dataset_info.json`
(LLaMA-Factory), `hf/` (`datasets.load_from_disk`).

Train on it:

```bash
hinttune train -d hf://{repo_id} -m THINK_MODEL -o runs/tuned
```

or with `datasets.load_dataset("{repo_id}")` (the Alpaca records), or LLaMA-Factory through
`dataset_info.json`.
"""


def push(run_dir: Path, repo_id: str, private: bool = False, revision: str | None = None,
         token: str | None = None) -> str:
    """Upload the run's dataset and its card; returns the commit's URL."""
    hub = _hub()
    export, name = _export(run_dir)
    api = hub.HfApi(token=token, endpoint=os.environ.get("HF_ENDPOINT") or None)
    with tempfile.TemporaryDirectory() as tmp:
        staging = Path(tmp)
        for suffix in (".json", ".messages.jsonl", ".meta.jsonl"):
            if (export / f"{name}{suffix}").exists():
                shutil.copy2(export / f"{name}{suffix}", staging / f"{name}{suffix}")
        for extra in ("dataset_info.json",):
            if (export / extra).exists():
                shutil.copy2(export / extra, staging / extra)
        if (export / "hf").is_dir():
            shutil.copytree(export / "hf", staging / "hf")
        (staging / "README.md").write_text(dataset_card(run_dir, repo_id), encoding="utf-8")
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            if revision and revision != "main":
                api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
            info = api.upload_folder(folder_path=str(staging), repo_id=repo_id, repo_type="dataset",
                                     revision=revision, commit_message=f"hinttune: {name} from {run_dir.name}")
        except _failures() as exc:
            raise HinttuneError(f"push to {repo_id}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return str(getattr(info, "commit_url", info))


def fetch(spec: str) -> Path:
    """``hf://REPO_ID[@REVISION]`` as a local folder holding the dataset (downloaded once, then
    from the Hugging Face cache)."""
    hub = _hub()
    repo_id, _, revision = spec[len(SCHEME):].partition("@")
    try:
        folder = hub.snapshot_download(repo_id, repo_type="dataset", revision=revision or None,
                                       endpoint=os.environ.get("HF_ENDPOINT") or None)
    except _failures() as exc:
        raise HinttuneError(f"{spec}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    return Path(folder)
