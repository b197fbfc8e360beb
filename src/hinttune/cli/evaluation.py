"""The ``hinttune`` commands for evaluation: eval and compare."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from hinttune.cli.common import EvalSetOpt, VerboseOpt, app, friendly
from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console, show


@app.command("eval")
@friendly
def eval_command(model: Optional[str] = typer.Option(None, "--model", "-m", help="Model to evaluate (hub id, folder, or served name)."),
                 backend: str = typer.Option("vllm", "--backend", "-b", help="vllm, openai or transformers."),
                 benchmarks: Optional[str] = typer.Option(None, "--benchmarks",
                                                          help="Comma-separated: aime24, aime25, hmmt25, math500, amc23, gsm8k, or your own with --data-file (default: aime24,aime25,hmmt25,math500)."),
                 n: Optional[int] = typer.Option(None, "--n", help="Samples per problem (default 16)."),
                 data_file: Optional[List[str]] = typer.Option(None, "--data-file", help="NAME=PATH: read a benchmark from a local file (repeatable)."),
                 output_dir: Optional[Path] = typer.Option(None, "--output-dir", "-o", help="Results folder (default runs/eval)."),
                 config: Optional[str] = typer.Option(None, "--config", "-c", help="An eval YAML (model, benchmarks, sampling, ...)."),
                 preset: Optional[str] = typer.Option(None, "--preset", help="Evaluation settings to start from: "
                                                      "'paper' (the default) or 'official' (the official task file's "
                                                      "n per benchmark and sources); --config and options override it."),
                 set: Optional[List[str]] = EvalSetOpt, verbose: bool = VerboseOpt) -> None:
    """Accuracy (avg@n, pass@k) and reasoning length on math benchmarks, with the paper's settings.

    Example: [cyan]hinttune eval -m runs/ht-4b --benchmarks aime24,math500 -o runs/eval-ht[/]
    """
    from hinttune.construction.outputs.summary import eval_table
    from hinttune.core.config import (
        EvalConfig,
        apply_override,
        read_yaml,
        validate_config,
    )
    from hinttune.core.store.rundir import setup_logging
    from hinttune.evaluation.evaluate import run_eval

    data: dict = read_yaml(preset, "eval_presets")[0] if preset else {}
    if config:
        data.update(read_yaml(config)[0])
    overrides = [f"benchmarks=[{benchmarks}]"] if benchmarks else []
    if model:
        overrides += [f"model.backend={backend}", f"model.model={model}"]
    for item in data_file or []:
        name, sep, path = item.partition("=")
        if not sep:
            raise HinttuneError(f"--data-file {item!r}: expected NAME=PATH")
        overrides.append(f"data_files.{name}={path}")
    if n is not None:
        overrides.append(f"n={n}")
    if output_dir is not None:
        overrides.append(f"output_dir={output_dir}")
    for override in overrides + list(set or []):
        apply_override(data, override)
    if "model" not in data:
        raise HinttuneError("--model is required (or a config with a model section)")
    cfg = validate_config(data, config or "eval options", EvalConfig)
    setup_logging(Path(cfg.output_dir), verbose)
    results = run_eval(cfg)
    show(eval_table(results))
    console.print(f"written: {cfg.output_dir}/results.json and samples_*.jsonl", highlight=False)



@app.command()
@friendly
def compare(results: List[str] = typer.Argument(..., help="results.json files or eval folders - or "
                                                 "dataset exports (run folders, export folders, NAME.meta.jsonl); "
                                                 "the first is the baseline."),
            plot: Path = typer.Option(Path("compare.png"), "--plot", help="Where to save the plot."),
            label: Optional[List[str]] = typer.Option(None, "--label", help="A name per result, in order "
                                                      "(default: its folder, made unique)."),
            reference: Optional[str] = typer.Option(None, "--reference", "-r", help="The result (label or path) "
                                                    "differences and token reduction are taken against (default: the first)."),
            all_pairs: bool = typer.Option(False, "--all-pairs", help="Also test every pair of models.")) -> None:
    """Evaluated models side by side (accuracy with paired tests, truncation, tokens and their
    reduction against a reference), or datasets side by side (state mix, target tokens,
    per-problem agreement with the first).

    Example: [cyan]hinttune compare runs/eval-base runs/eval-ht --label base --label tuned[/]
             [cyan]hinttune compare runs/demo runs/demo/export/baselines/full[/]
    """
    from hinttune.construction.outputs.compare_datasets import sidecar
    from hinttune.evaluation.compare import (
        comparison_rows,
        comparison_table,
        comparison_warnings,
        load_results,
        pairs_table,
        unique_labels,
    )
    from hinttune.evaluation.compare import all_pairs as every_pair
    from hinttune.evaluation.compare_plot import comparison_plot

    labels = list(label or [])
    if labels and len(labels) != len(results):
        raise HinttuneError(f"--label given {len(labels)} times for {len(results)} results: one per result")
    missing = [r for r in results if not Path(r).exists()]
    if missing:
        raise HinttuneError(f"{missing[0]}: no such file or folder")
    datasets = [sidecar(r) is not None and not (Path(r) / "results.json").exists() for r in results]
    if all(datasets):
        return _compare_datasets(results, labels, plot)
    if any(datasets):
        raise HinttuneError("compare takes evaluation results or datasets, not both: "
                            f"{results[datasets.index(True)]} is a dataset, {results[datasets.index(False)]} is not")
    loaded = [load_results(r, labels[i] if labels else None) for i, r in enumerate(results)]
    unique_labels(loaded)
    for warning in comparison_warnings(loaded):
        console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    ref = _reference(loaded, results, reference)
    rows = comparison_rows(loaded, ref)
    show(comparison_table(rows, loaded[ref]["label"]))
    if all_pairs:
        show(pairs_table(every_pair(loaded)))
    if comparison_plot(rows, loaded, plot):
        console.print(f"plot: {plot}", highlight=False)


def _reference(loaded: list[dict], paths: List[str], wanted: Optional[str]) -> int:
    if wanted is None:
        return 0
    for i, (result, path) in enumerate(zip(loaded, paths)):
        if wanted in (result["label"], path) or Path(wanted).resolve() == Path(path).resolve():
            return i
    raise HinttuneError(f"--reference {wanted!r}: not one of the results ({', '.join(r['label'] for r in loaded)})")


def _compare_datasets(paths: List[str], labels: List[str], plot: Path) -> None:
    from hinttune.construction.outputs.compare_datasets import (
        dataset_rows,
        datasets_plot,
        datasets_table,
        load_dataset,
    )
    from hinttune.evaluation.compare import unique_labels

    loaded = [load_dataset(p, labels[i] if labels else None) for i, p in enumerate(paths)]
    unique_labels(loaded)
    units = {d["unit"] for d in loaded}
    if len(units) > 1:
        console.print(f"[bold yellow]warning:[/] the datasets count length in different units "
                      f"({', '.join(sorted(units))}): their token columns do not compare", highlight=False)
    rows = dataset_rows(loaded)
    show(datasets_table(rows, loaded[0]["unit"]))
    if datasets_plot(rows, loaded, plot):
        console.print(f"plot: {plot}", highlight=False)
