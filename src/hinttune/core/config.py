"""One typed configuration for a run, loaded from YAML (a file or a built-in preset) and
overridable field by field from the command line with dotted keys (``think.model=...``)."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hinttune.core.errors import HinttuneError


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Sampling(Strict):
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.8, gt=0, le=1)
    top_k: int | None = Field(None, description="None or -1 disables top-k")
    max_tokens: int = Field(32768, gt=0, description="maximum new tokens per generation")
    stop: list[str] = Field(default_factory=list)


# The judge's sampling (s1's grading): greedy, 512 tokens.
JUDGE_SAMPLING = Sampling(temperature=0.0, top_p=1.0, max_tokens=512)

# Model settings that say where and how fast a model runs, not what it writes: shards on
# different nodes may differ in them, and no cache key includes them.
PLACEMENT = frozenset({
    "base_url", "api_key_env", "data_parallel_size", "data_parallel", "max_in_flight",
    "max_concurrency", "engine_timeout", "timeout", "max_retries", "requests_per_minute",
    "gpu_memory_utilization", "tensor_parallel_size", "device", "batch_size", "delay",
    "engine_kwargs", "num_threads"})


# Model settings that go into each request rather than into the engine: two configs that
# differ only in these can share one loaded engine.
PER_REQUEST = frozenset({"system_prompt", "prompt_template", "response_prefix", "chat_template_kwargs",
                         "sampling"})
DEFAULT_GPU_MEMORY = 0.9


class ModelBase(Strict):
    """What every backend shares: which model, how a problem becomes a prompt, how to sample."""

    model: str = Field(description="hub id, local folder, package://NAME for a model shipped in a "
                       "Python package, or the served model name for the openai backend")
    name: str | None = Field(None, pattern=r"^[\w.-]+$", description="short name in outputs (a "
                             "probe's export folder, the summary); default: the last part of `model`")
    gguf_file: str | None = Field(None, description="GGUF file inside `model` (transformers)")
    tokenizer: str | None = Field(None, description="tokenizer to render chat templates with; "
                                  "defaults to `model`")
    system_prompt: str | None = None
    prompt_template: str = Field("{problem}", description="user message; {problem} is replaced")
    response_prefix: str = Field("", description="text the assistant turn starts with, which the "
                                 "model continues (e.g. '<think>\\n' to make it reason in tags)")
    chat_template_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="passed to the chat template, e.g. enable_thinking: false")
    sampling: Sampling = Field(default_factory=Sampling)


class Parallel(Strict):
    data_parallel_size: int = Field(1, ge=1, description="engines of this model, each on its own "
                                    "GPU group (tensor_parallel_size GPUs), requests sharded across them")
    data_parallel: Literal["processes", "ray"] = Field(
        "processes", description="processes: on this node; ray: Ray actors across the cluster")


class VLLMModel(ModelBase, Parallel):
    backend: Literal["vllm"]
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = 32768
    gpu_memory_utilization: float | None = Field(
        None, gt=0, le=1, description="share of each GPU's memory the engine takes; default: "
        "0.9, divided among the vLLM engines a construction run holds at once, an instruct model "
        "two parts to the think model's one (0.3 and 0.6). Set it per model for other sizes")
    dtype: str = "auto"
    enable_prefix_caching: bool = True
    trust_remote_code: bool = False
    max_in_flight: int = Field(1024, ge=1, description="requests in the engine at once; each "
                               "is stored the moment it finishes and its slot refilled at once "
                               "(vLLM's max_num_seqs, in engine_kwargs, caps what runs per step)")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="extra vllm.LLM args")
    engine_timeout: float | None = Field(600.0, gt=0, description="seconds without an engine step "
                                         "after which its requests fail (retried next run) and it "
                                         "takes no more; None: wait forever")


class OpenAIModel(ModelBase):
    backend: Literal["openai"]
    base_url: str | list[str] = Field("http://127.0.0.1:8000/v1", description="one server, or "
                                      "several serving the same model: requests go to the least busy")
    api_key_env: str | None = Field(
        "OPENAI_API_KEY", description="name of the environment variable holding the API key "
        "(the key itself is never written to config, logs or outputs)")
    continue_mode: Literal["completions", "chat_continue", "chat_fallback"] = Field(
        "completions", description="how a partial assistant turn is continued: raw "
        "/v1/completions with a prompt rendered from the tokenizer (exact), chat with "
        "continue_final_message (vLLM/SGLang), or the official scripts' 'please continue' "
        "fallback for chat-only APIs")
    max_concurrency: int | dict[str, int] = Field(
        256, description="requests in flight per server (vLLM and SGLang batch hundreds); a "
        "mapping of base_url -> count sets it per server")
    max_retries: int = Field(5, ge=0)
    timeout: float = Field(600.0, gt=0, description="seconds per HTTP request")
    requests_per_minute: float | None = Field(None, gt=0)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    revision: str | None = Field(None, description="what the server serves under `model` (a "
                                 "checkpoint step, a commit): part of every cache key, so results "
                                 "of a retrained model served under the same name are not reused")


class TransformersModel(ModelBase, Parallel):
    backend: Literal["transformers"]
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = Field(8, ge=1)
    num_threads: int | None = Field(None, ge=1, description="CPU threads for torch on the CPU; default: "
                                    "the cores not already busy (load average), at least 1")
    trust_remote_code: bool = False


class FakeModel(ModelBase, Parallel):
    """A scripted model shipped for tests and dry runs: no weights, deterministic output."""

    backend: Literal["fake"]
    delay: float = Field(0.0, ge=0, description="seconds per generation")
    answers: dict[str, str] = Field(default_factory=dict, description="substring of prompt (or "
                                    "re:REGEX) -> reply; the first that matches")
    default_reply: str = "<think>\nLet me think. The answer is 0.\n</think>\n\nThe answer is 0."


class TracesModel(ModelBase):
    """Think attempts read from a file of traces another generator wrote (s1K-1.1's rows, any
    JSON/JSONL/CSV/parquet, a saved or hub dataset) instead of generated: stored in the run
    store like generated ones (finish reason ``imported``, model ``traces:SOURCE``), so resume,
    status, probing and export work unchanged. A problem is matched by its text."""

    backend: Literal["traces"]
    model: str = Field("", description="the model that wrote the traces (its tokenizer counts "
                       "tokens); default: traces:SOURCE")
    source: str = Field(description="a .json/.jsonl/.csv/.parquet file, a save_to_disk folder, or "
                        "a Hugging Face dataset name")
    split: str = "train"
    problem_field: str | None = Field(None, description="default: problem, question")
    reasoning_field: str | None = Field(None, description="the reasoning, without tags (a list "
                                        "of strings is joined); default: thinking_trajectories, "
                                        "deepseek_thinking_trajectory, reasoning, reasoning_content, thinking")
    answer_field: str | None = Field(None, description="the answer after the reasoning; default: "
                                     "attempt, deepseek_attempt, response")
    output_field: str | None = Field(None, description="instead of reasoning and answer: one "
                                     "field holding the whole output, <think>...</think> included")

    @model_validator(mode="after")
    def _named_after_the_source(self) -> "TracesModel":
        if not self.model:
            self.model = f"traces:{self.source}"
        return self


ModelConfig = Annotated[
    Union[VLLMModel, OpenAIModel, TransformersModel, FakeModel, TracesModel], Field(discriminator="backend")
]


class ProblemsConfig(Strict):
    source: str = Field("demo", description="'demo', a .json/.jsonl/.parquet file, a "
                        "save_to_disk folder, or a Hugging Face dataset name (NAME:CONFIG for a config)")
    split: str = "train"
    problem_field: str | None = Field(None, description="default: problem, question")
    answer_field: str | None = Field(None, description="default: gold_answer, answer, solution")
    skip_invalid: bool = Field(False, description="skip malformed records (listed in the run log) "
                               "instead of stopping")
    limit: int | None = Field(None, ge=1, description="use only the first N problems")
    decontaminate: Literal["off", "report", "drop"] = Field(
        "report", description="check the problems for n-gram overlap with benchmarks before building: "
        "report (default) lists them (contamination.jsonl, summary), drop also removes them; with "
        "report, a benchmark that cannot be loaded (no hub access) is named as not checked")
    benchmarks: list[str] = Field(default_factory=list, description="what to check against: built-in "
                                  "benchmark names (from the hub), NAME=PATH or paths; default: the six built in")
    ngram: int = Field(8, ge=1, description="words per n-gram for decontamination (open-r1, s1: 8)")
    min_overlap: float = Field(0.0, ge=0, le=1, description="share of a problem's n-grams a benchmark "
                               "problem must have to count (0: any one, the open-r1 and s1 rule)")
    shard: str | None = Field(None, pattern=r"^[1-9]\d*/[1-9]\d*$", description="I/N: build only the "
                              "problems in shard I of N (by a hash of each problem's id), in "
                              "RUN_DIR/shards/I-of-N; `hinttune merge` joins the shards")

    @field_validator("shard")
    @classmethod
    def _shard_in_range(cls, value: str | None) -> str | None:
        if value is not None:
            index, count = map(int, value.split("/"))
            if index > count:
                raise ValueError(f"shard {value}: I must be between 1 and N")
        return value

    def shard_parts(self) -> tuple[int, int] | None:
        return tuple(map(int, self.shard.split("/"))) if self.shard else None  # type: ignore[return-value]


class AttemptsConfig(Strict):
    samples: int = Field(1, ge=1, description="answers per problem and model")


DEFAULT_KEYWORDS = ["wait", "actually", "let me reconsider", "on second thought", "hold on",
                    "let me rethink", "hmm"]
OFFICIAL_KEYWORDS = DEFAULT_KEYWORDS[:-1]  # the official config has no "hmm"


class GradingConfig(Strict):
    grader: Literal["hybrid", "math", "judge"] | None = Field(
        None, description="hybrid: Math-Verify where the gold answer is short and it is decisive, "
        "else the LLM judge; judge alone reproduces the paper (default: hybrid; official policy: judge)")
    judge: ModelConfig | None = Field(None, description="the LLM judge; default: the instruct "
                                      "model at temperature 0, 512 tokens, thinking off")
    judge_rule: Literal["last_line", "endswith"] | None = Field(
        None, description="last_line: the reply's last line must be Yes or No, else undecided; "
        "endswith: correct iff the reply ends with 'yes' (official scripts)")
    math_timeout: int = Field(5, ge=1, description="seconds per Math-Verify check (in a worker process)")
    math_workers: int = Field(2, ge=1)
    short_gold_chars: int = Field(100, ge=1, description="gold answers up to this long (and with "
                                  "no line breaks) count as short final answers")
    audit: int = Field(0, ge=0, description="grade this many sampled replies (short golds) with both "
                       "the math rules and the judge; agreement in the summary, items in grading_audit.jsonl")

    @field_validator("judge")
    @classmethod
    def _judge_defaults(cls, judge: Any) -> Any:
        """A judge of its own samples greedily, 512 tokens, thinking off, unless its config says
        otherwise. Filled in here, once, so the saved config.yaml says what runs and reading it
        back (a shard's config in ``merge``, a resumed run) gives the same judge."""
        if judge is None:
            return None
        update: dict[str, Any] = {}
        if "sampling" not in judge.model_fields_set:
            update["sampling"] = JUDGE_SAMPLING
        if "chat_template_kwargs" not in judge.model_fields_set:
            update["chat_template_kwargs"] = {"enable_thinking": False}
        return judge.model_copy(update=update) if update else judge


class SegmentConfig(Strict):
    method: Literal["keywords", "paragraphs", "windows"] = "keywords"
    keywords: list[str] | None = Field(None, description="reflection keywords (default: the "
                                       "paper's list incl. 'hmm'; official policy: without 'hmm')")
    whole_words: bool | None = Field(None, description="match keywords as whole words (default) "
                                     "or as raw substrings like the official scripts")
    max_episodes: int = Field(40, ge=1, description="keep only the first N episodes")
    window_tokens: int = Field(64, ge=1, description="tokens per episode for method=windows")


class ProbeConfig(Strict):
    max_tokens: int | None = Field(None, ge=1, description="instruct model's budget per "
                                   "continuation (paper: 16384); default: instruct.sampling.max_tokens")
    strategy: Literal["linear", "sweep", "gallop"] = Field(
        "linear", description="linear: k = 1, 2, ... (the paper); sweep: every k in one round; "
        "gallop: exponential then binary search (fewest generations if success is monotone in k)")
    verify: bool = Field(False, description="gallop: re-check k-1 of the found K* with fresh samples")
    fill_batch: int | None = Field(None, ge=0, description="linear: the slots per engine to keep "
                                   "full by asking further k ahead of each problem's lowest open one "
                                   "whenever they would idle, with a quarter more queued (default: every "
                                   "slot of the instruct engines, derived from them; 0: one k at a time, "
                                   "the paper's walk); what is asked past K* is counted")
    samples_per_prefix: int = Field(1, ge=1, description="continuations per prefix")
    success_rule: Literal["any", "majority", "at_least"] = Field(
        "any", description="when a prefix counts as solving the problem, over its samples")
    min_successes: int = Field(1, ge=1, description="m for success_rule=at_least")

    def succeeded(self, verdicts: list[bool | None]) -> bool:
        wins = sum(v is True for v in verdicts)
        if self.success_rule == "any":
            return wins >= 1
        if self.success_rule == "majority":
            return wins * 2 > len(verdicts)
        return wins >= self.min_successes


class AssembleConfig(Strict):
    policy: Literal["paper", "official"] = Field(
        "paper", description="paper: the paper's state rules; official: the official scripts'")
    keep_unverified: bool = Field(False, description="keep Full-Hint targets whose think answer "
                                  "was not graded correct (the official scripts do)")
    baselines: list[Literal["full", "two-state", "matched-random", "shortest-of-n", "first-correct"]] = Field(
        default_factory=list, description="also export these construction policies from the same "
        "store: full (every verified think trace, s1-style), two-state (No-Hint or Full-Hint only), "
        "matched-random (Hint Tuning's state counts dealt at random), shortest-of-n (the shortest "
        "correct of attempts.samples think traces), first-correct (the think trace cut at the "
        "first episode after which a forced answer is right)")
    first_correct_max_tokens: int = Field(256, ge=1, description="first-correct: the think "
                                          "model's budget for the answer forced after </think>")
    combine: Literal["min", "max", "median", "vote"] | None = Field(
        None, description="with several instruct models: also export one dataset whose state per "
        "problem combines theirs (by K*, a problem no hint solved counting as N): min (the "
        "shortest hint any probe needed), max, median, or vote (the most common K*)")


class ExportConfig(Strict):
    formats: list[Literal["alpaca", "messages", "hf"]] = Field(default_factory=lambda: ["alpaca", "messages"])
    official_layout: bool = Field(False, description="also write the official scripts' four "
                                  "intermediate files")
    dataset_name: str = "hint_tuning"


class RunConfig(Strict):
    run_dir: Path = Path("runs/default")
    seed: int = 0
    problems: ProblemsConfig = Field(default_factory=ProblemsConfig)
    think: ModelConfig
    instruct: ModelConfig
    probes: list[ModelConfig] = Field(default_factory=list, description="further instruct models "
                                      "probed against the same think traces (write `instruct` as a "
                                      "list): each gets its dataset in export/probes/NAME/")
    attempts: AttemptsConfig = Field(default_factory=AttemptsConfig)
    grading: GradingConfig = Field(default_factory=GradingConfig)
    segment: SegmentConfig = Field(default_factory=SegmentConfig)
    probe: ProbeConfig = Field(default_factory=ProbeConfig)
    assemble: AssembleConfig = Field(default_factory=AssembleConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)

    @model_validator(mode="before")
    @classmethod
    def _instruct_list(cls, data: Any) -> Any:
        # `instruct: [a, b, c]`: a is the instruct model (attempts, default judge, export/), the
        # others are further probes
        if isinstance(data, dict) and isinstance(data.get("instruct"), list):
            models = data["instruct"]
            if not models:
                raise ValueError("instruct: an empty list; name at least one instruct model")
            data = {**data, "instruct": models[0], "probes": [*models[1:], *data.get("probes", [])]}
        return data

    @property
    def official(self) -> bool:
        return self.assemble.policy == "official"

    def probe_models(self) -> dict[str, ModelBase]:
        """Every instruct model by its unique name, the first one first."""
        named: dict[str, ModelBase] = {}
        for model in (self.instruct, *self.probes):
            base = model.name or re.sub(r"[^\w.-]+", "-", model.model.rstrip("/").rsplit("/", 1)[-1]) or "instruct"
            name, n = base, 2
            while name in named:
                if model.name:
                    raise ValueError(f"instruct models: the name {model.name!r} is used twice")
                name, n = f"{base}-{n}", n + 1
            named[name] = model
        return named

    @model_validator(mode="after")
    def _shard_has_its_own_directory(self) -> "RunConfig":
        parts = self.problems.shard_parts()
        if parts is not None:
            folder = f"{parts[0]}-of-{parts[1]}"
            if not (self.run_dir.name == folder and self.run_dir.parent.name == "shards"):
                self.run_dir = self.run_dir / "shards" / folder
        return self

    @model_validator(mode="after")
    def _engines_share_the_gpus(self) -> "RunConfig":
        # every model of a construction is loaded at once (one pipeline per problem): vLLM
        # engines whose memory share is not set divide the default between them, an instruct
        # model two parts to the think model's one - probing is most of the work (for two 7B
        # models on an 80 GB GPU the think engine then holds about a fifth of the KV cache)
        roles = [(self.think, 1), (self.instruct, 2), *((m, 2) for m in self.probes),
                 *([(self.grading.judge, 1)] if self.grading.judge else [])]
        engines: dict[str, tuple[Any, int]] = {}
        for model, weight in roles:
            if model.backend == "vllm":
                key = model.model_dump_json(exclude=set(PER_REQUEST))
                engines[key] = (model, max(weight, engines.get(key, (None, 0))[1]))
        unset = {key: weight for key, (m, weight) in engines.items() if m.gpu_memory_utilization is None}
        if len(engines) > 1 and unset:
            left = max(0.05, DEFAULT_GPU_MEMORY - sum(m.gpu_memory_utilization or 0 for m, _ in engines.values()))
            for model, _ in roles:
                key = model.model_dump_json(exclude=set(PER_REQUEST)) if model.backend == "vllm" else None
                if key in unset and model.gpu_memory_utilization is None:
                    model.gpu_memory_utilization = round(left * unset[key] / sum(unset.values()), 3)
        return self

    @model_validator(mode="after")
    def _probe_names_are_unique(self) -> "RunConfig":
        self.probe_models()
        if self.assemble.combine and not self.probes:
            raise ValueError("assemble.combine needs several instruct models (instruct: [a, b, ...])")
        if "first-correct" in self.assemble.baselines and self.think.backend == "traces":
            raise ValueError("the first-correct baseline has the think model continue its own trace; "
                             "imported traces (think.backend: traces) cannot: drop it or name a model")
        return self

    @model_validator(mode="after")
    def _layout_needs_the_official_rules(self) -> "RunConfig":
        # The official merge.py applies the official scripts' state rules to these files: from
        # a paper-policy run it would silently build a different dataset.
        if self.export.official_layout and not self.official:
            raise ValueError("export.official_layout (--layout official) writes the files the "
                             "official merge.py reads, and merge.py applies the official state "
                             "rules: use it with assemble.policy=official (--policy official)")
        return self


class LoraSettings(Strict):
    enabled: bool = False
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class TrainConfig(Strict):
    """Supervised fine-tuning of the think model on a Hint Tuning dataset (TRL SFTTrainer)."""

    data: str = Field("", description="Alpaca JSON, messages JSONL, or a run directory")
    model: str = Field("", description="the think model to fine-tune (hub id or folder)")
    output_dir: Path = Path("runs/train")
    learning_rate: float = Field(1e-5, gt=0)
    num_train_epochs: float = Field(5, gt=0)
    max_steps: int = Field(-1, description="stop after N optimizer steps (-1: by epochs)")
    global_batch_size: int = Field(16, ge=1, description="kept whatever the number of GPUs: "
                                   "gradient accumulation is derived from it")
    per_device_batch_size: int = Field(1, ge=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_ratio: float = Field(0.05, ge=0, le=1)
    lr_scheduler_type: str = "cosine"
    adam_beta1: float = 0.9
    adam_beta2: float = 0.95
    bf16: bool = True
    max_length: int = Field(32768, ge=16)
    overlong: Literal["drop", "truncate"] = Field("drop", description="samples longer than "
                                                   "max_length: drop them (listed in the log), or truncate")
    gradient_checkpointing: bool = True
    seed: int = 42
    logging_steps: int = Field(1, ge=1)
    save_strategy: Literal["steps", "epoch", "no"] = "epoch"
    save_steps: int = Field(500, ge=1)
    save_total_limit: int | None = 2
    resume: bool = Field(True, description="continue from the last checkpoint in output_dir")
    use_cpu: bool = False
    attn_implementation: str | None = None
    torch_dtype: str = Field("float32", description="the dtype the weights are held in while training: "
                             "float32 master weights with bf16 compute (bf16: true), as s1 and TRL train; "
                             "bfloat16 or auto (the checkpoint's) halves their memory, but an AdamW step at "
                             "lr 1e-5 then rounds away most updates")
    loss_weighting: Literal["sequence", "token"] = Field(
        "sequence", description="sequence (s1, the paper): each sample's loss is the mean over its own "
        "target tokens and the global batch averages them; token (TRL's default): every target token "
        "of the global batch weighs the same, so long targets dominate")
    quick: bool = Field(False, description="a quick test: no checkpoints (only the final model, no "
                        "optimizer state), nothing to resume")
    augment: bool = Field(False, description="add instruction phrasings on the fly (hinttune augment)")
    augment_copies: int = Field(1, ge=1)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    trl_args: dict[str, Any] = Field(default_factory=dict, description="any other SFTConfig argument")
    report_to: list[str] = Field(default_factory=lambda: ["auto"], description="auto: TensorBoard "
                                 "when installed (event files in OUTPUT/runs), else none; or "
                                 "transformers' integrations by name (tensorboard, wandb, mlflow, none)")


class EvalSampling(Sampling):
    """The paper's evaluation sampling (a partial override keeps the other values)."""

    temperature: float = Field(0.6, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(32768, gt=0)


PAPER_EVAL_PROMPT = "{problem}\n\nPlease reason step by step, and put your final answer within \\boxed{}."


class EvalConfig(Strict):
    """Accuracy and reasoning length on math benchmarks, as the paper measures them."""

    model: ModelConfig
    benchmarks: list[str] = Field(default_factory=lambda: ["aime24", "aime25", "hmmt25", "math500"])
    n: int = Field(16, ge=1, description="samples per problem (paper: 16)")
    n_per_benchmark: dict[str, int] = Field(default_factory=dict, description="benchmark -> samples "
                                            "per problem, where it differs from n")
    prompt_template: str = PAPER_EVAL_PROMPT
    sampling: EvalSampling = Field(default_factory=EvalSampling)
    output_dir: Path = Path("runs/eval")
    seed: int = 0
    data_files: dict[str, str] = Field(default_factory=dict, description="benchmark -> local file")
    hub: dict[str, str] = Field(default_factory=dict, description="benchmark -> hub dataset name")
    splits: dict[str, str] = Field(default_factory=dict, description="benchmark -> split of its hub "
                                   "dataset, where it differs from the built-in one")
    fields: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="benchmark -> {problem: FIELD, answer: FIELD} for your own files")
    limit: int | None = Field(None, ge=1, description="first N problems of each benchmark")
    math_timeout: int = Field(5, ge=1)
    truncated: Literal["whole_output", "no_answer"] = Field(
        "whole_output", description="an output cut by the token limit before </think>: whole_output "
        "(the paper's harness, lighteval: with <think> in the prompt the output is graded whole, so a "
        "boxed answer inside cut reasoning counts) or no_answer (graded as having none)")

    def samples(self, benchmark: str) -> int:
        return self.n_per_benchmark.get(benchmark, self.n)


class ExperimentTraining(Strict):
    """One recipe for every dataset of an experiment, at equal compute."""

    model: str = Field(..., description="the model every dataset fine-tunes (hub id or folder)")
    gguf_file: str | None = Field(None, description="a GGUF file in `model`: converted once to a "
                                  "checkpoint in the experiment folder, which trains and is evaluated")
    recipe: str = Field("s1", description="a training recipe (preset name or YAML file)")
    set: dict[str, Any] = Field(default_factory=dict, description="recipe settings to override "
                                "(dotted keys: num_train_epochs, global_batch_size, lora.enabled, ...)")
    match: Literal["epochs", "steps", "tokens"] = Field(
        "steps", description="what is held equal across datasets: epochs (the recipe's; more records, "
        "more compute), steps (every dataset gets the reference's optimizer steps) or tokens (every "
        "dataset sees about as many target characters as the reference)")
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1,
                             description="every dataset is trained once per seed")


class ExperimentEvaluation(Strict):
    preset: str = Field("paper", description="evaluation settings to start from (paper, official)")
    backend: str = Field("vllm", description="the backend every model is evaluated on")
    model: dict[str, Any] = Field(default_factory=dict, description="further model settings for "
                                  "evaluation (device, batch_size, engine settings, ...)")
    set: dict[str, Any] = Field(default_factory=dict, description="evaluation settings to override "
                                "(benchmarks, n, data_files, sampling, limit, ...)")


class ExperimentConfig(Strict):
    """``hinttune experiment``: datasets x seeds trained with one recipe at equal compute, the
    base and every trained model evaluated, and the paper's table with paired tests."""

    name: str = "experiment"
    output_dir: Path = Path("runs/experiment")
    run: str | None = Field(None, description="a construction run folder: its datasets are named "
                            "hint-tuning and by baseline (full, two-state, ...)")
    build: str | None = Field(None, description="a run config built first when `run` has no export yet")
    build_set: list[str] = Field(default_factory=list, description="overrides for `build` (KEY=VALUE)")
    datasets: list[str] = Field(..., min_length=1, description="names in `run`, or NAME=PATH (a dataset "
                                "file or folder, or hf://REPO)")
    reference: str = Field("hint-tuning", description="the dataset every other is compared with")
    evaluate_base: bool = Field(True, description="evaluate the untrained model too")
    training: ExperimentTraining
    evaluation: ExperimentEvaluation = Field(default_factory=ExperimentEvaluation)

    @model_validator(mode="after")
    def _reference_is_a_dataset(self) -> "ExperimentConfig":
        names = [d.partition("=")[0].strip() for d in self.datasets]
        if len(set(names)) != len(names):
            raise ValueError(f"datasets: each name once ({', '.join(names)})")
        if self.reference not in names:
            raise ValueError(f"reference {self.reference!r} is not one of the datasets ({', '.join(names)})")
        return self


def preset_names(folder: str = "presets") -> list[str]:
    root = resources.files("hinttune") / folder
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


MAX_CONFIG_NODES = 100_000  # a real config has a few hundred values; an alias bomb billions


def _expanded_size(root: Any, where: str) -> int:
    """How many values ``root`` holds with every YAML alias expanded, counted without
    expanding it (a shared node is sized once); a mapping that would grow past
    MAX_CONFIG_NODES values when copied (as validation does), or that contains itself, is
    refused with one line."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]

    def children(node: Any) -> list[Any]:
        return [*node.keys(), *node.values()] if isinstance(node, dict) else list(node)

    while stack:
        node, finished = stack.pop()
        if not isinstance(node, (dict, list)):
            continue
        ident = id(node)
        if finished:
            on_path.discard(ident)
            sizes[ident] = 1 + sum(sizes[id(c)] if isinstance(c, (dict, list)) else 1 for c in children(node))
            if sizes[ident] > MAX_CONFIG_NODES:
                raise HinttuneError(f"{where}: YAML aliases expand to more than {MAX_CONFIG_NODES:,} "
                                    "values; write the settings out instead of nesting aliases")
            continue
        if ident in sizes:
            continue
        if ident in on_path:
            raise HinttuneError(f"{where}: a YAML alias refers to a mapping or list that contains it")
        on_path.add(ident)
        stack.append((node, True))
        stack.extend((c, False) for c in children(node) if isinstance(c, (dict, list)) and id(c) not in sizes)
    return sizes.get(id(root), 1)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    without a word, so a setting written twice would silently lose the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not key_node:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice: on line {first.start_mark.line + 1} "
                    f"and on line {key_node.start_mark.line + 1}", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, where: str) -> Any:
    """YAML as data, with one line for what cannot be read: bad syntax, nesting deeper than
    Python's recursion limit, an integer longer than Python converts, aliases that expand
    beyond any real configuration."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise HinttuneError(f"{where}: not valid YAML: {exc}") from None
    except RecursionError:
        raise HinttuneError(f"{where}: YAML nested too deeply to read") from None
    except ValueError as exc:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise HinttuneError(f"{where}: a YAML value is out of range: {exc}") from None
    _expanded_size(data, where)
    return data


def read_yaml(config: str, folder: str = "presets") -> tuple[dict[str, Any], str]:
    from hinttune.core.files import read_text

    path = Path(config)
    if path.is_file():
        text, where = read_text(path), str(path)
    elif config in preset_names(folder):
        text = (resources.files("hinttune") / folder / f"{config}.yaml").read_text("utf-8")
        where = f"preset {config!r}"
    else:
        raise HinttuneError(f"config {config!r}: no such file, and not a preset "
                            f"(presets: {', '.join(preset_names(folder))})")
    data = parse_yaml(text, where) or {}
    if not isinstance(data, dict):
        raise HinttuneError(f"{where}: the top level must be a mapping of settings")
    return data, where


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply ``a.b.c=value`` in place; the value is parsed as YAML (numbers, lists, null)."""
    key, sep, raw = override.partition("=")
    if not sep or not key.strip():
        raise HinttuneError(f"override {override!r}: expected KEY=VALUE, e.g. think.model=Qwen/Qwen3-4B")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: the text itself
    except (RecursionError, ValueError):
        value = parse_yaml(raw, f"override {key.strip()!r}")  # raises its one line
    _expanded_size(value, f"override {key.strip()!r}")
    if isinstance(value, bool) and raw.strip().lower() not in ("true", "false"):
        value = raw.strip()  # YAML 1.1 reads no/yes/on/off as booleans: save_strategy=no is "no"
    parts = key.strip().split(".")
    node = data
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


BACKENDS = ("vllm", "openai", "transformers", "fake")


def _describe(error: dict[str, Any]) -> str:
    # pydantic puts the discriminator's value in the location (think.vllm.x): drop it
    parts = [str(p) for p in error["loc"]]
    loc = ".".join(p for i, p in enumerate(parts) if not (i == 1 and p in BACKENDS))
    if error["type"] == "extra_forbidden":
        import difflib

        close = difflib.get_close_matches(parts[-1], sorted(_known_keys()), n=1, cutoff=0.75)
        return f"{loc}: unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if error["type"] == "union_tag_invalid":
        return f"{loc}.backend: must be one of {', '.join(BACKENDS)}"
    msg = error["msg"].removeprefix("Value error, ")
    value = error.get("input")
    if error["type"] == "string_pattern_mismatch" and isinstance(value, str):
        msg = "not of the form expected"  # the pattern itself says nothing to a user
        if parts and parts[-1] == "shard":
            msg = "should be I/N with 1 <= I <= N (e.g. 2/8)"
    if isinstance(value, (str, int, float, bool)) and value is not None and repr(value) not in msg:
        msg += f" (got {value!r})" if len(repr(value)) <= 80 else f" (got {repr(value)[:77]}...)"
    return f"{loc}: {msg}" if loc else msg


def _known_keys() -> set[str]:
    keys: set[str] = set()
    todo: list[type[BaseModel]] = [RunConfig, TrainConfig, EvalConfig, *MODEL_CLASSES.values()]
    while todo:
        cls = todo.pop()
        for name, info in cls.model_fields.items():
            keys.add(name)
            if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
                todo.append(info.annotation)
    return keys


def validate_config(data: dict[str, Any], where: str = "config", schema: type[BaseModel] = RunConfig) -> Any:
    try:
        return schema.model_validate(data)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise HinttuneError(f"{where}: invalid configuration:\n  {lines}") from None


MODEL_CLASSES = {"vllm": VLLMModel, "openai": OpenAIModel, "transformers": TransformersModel,
                 "fake": FakeModel, "traces": TracesModel}


def _prune_for_backend(section: Any) -> None:
    """After ``--set think.backend=openai``, keys of the file's old backend (device,
    tensor_parallel_size, ...) no longer apply: drop them instead of failing."""
    if isinstance(section, dict) and section.get("backend") in MODEL_CLASSES:
        allowed = MODEL_CLASSES[section["backend"]].model_fields
        for key in [k for k in section if k not in allowed and k in _ALL_BACKEND_KEYS]:
            del section[key]


def load_config(config: str, overrides: list[str] | None = None) -> RunConfig:
    data, where = read_yaml(config)
    for override in overrides or []:
        apply_override(data, override)
        key = override.partition("=")[0].strip()
        if key.endswith(".backend"):
            node: Any = data
            for part in key.split(".")[:-1]:
                node = node.get(part) if isinstance(node, dict) else None
            _prune_for_backend(node)
    if overrides:
        where += " with overrides"
    return validate_config(data, where)


_ALL_BACKEND_KEYS = {k for cls in MODEL_CLASSES.values() for k in cls.model_fields}


def load_settings(config: str, folder: str, cls: type[BaseModel], overrides: list[str] | None = None) -> Any:
    """A YAML file, or a preset of ``folder``, with KEY=VALUE overrides, validated as ``cls``."""
    data, where = read_yaml(config, folder)
    for override in overrides or []:
        apply_override(data, override)
    return validate_config(data, where + (" with overrides" if overrides else ""), cls)


def load_train_config(recipe: str, overrides: list[str] | None = None) -> TrainConfig:
    return load_settings(recipe, "recipes", TrainConfig, overrides)


def load_experiment(config: str, overrides: list[str] | None = None) -> ExperimentConfig:
    return load_settings(config, "experiments", ExperimentConfig, overrides)


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
