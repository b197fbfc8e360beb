"""Importing the official scripts' intermediate files: our --layout official export read back
gives the same dataset byte for byte; malformed files are errors naming file, record, field."""

import json
import shutil

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.importers.official import import_official
from hinttune.core.errors import HinttuneError
from test_official_oracle import official_run

pytest.importorskip("math_verify")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("official")
    official_run(tmp)
    return tmp / "run" / "export"


def copy_of(exported, tmp_path):
    folder = tmp_path / "output"
    shutil.copytree(exported / "official", folder)
    return folder


def test_import_rebuilds_the_same_dataset(exported, tmp_path):
    result = CliRunner().invoke(app, ["import-official", str(exported / "official"), "-o", str(tmp_path / "imp")])
    assert result.exit_code == 0, result.output
    assert "Sparse-Hint" in result.output and "imported.json" in result.output
    assert (tmp_path / "imp" / "export" / "hint_tuning.json").read_bytes() == \
        (exported / "hint_tuning.json").read_bytes()
    meta = [json.loads(line) for line in (tmp_path / "imp" / "export" / "hint_tuning.meta.jsonl").open()]
    assert [m["state"] for m in meta].count("Sparse-Hint") == 3
    assert json.loads((tmp_path / "imp" / "imported.json").read_text())["instruct_model"] == "org/instruct-model"
    assert (tmp_path / "imp" / "summary.png").exists()


def test_a_missing_field_names_file_record_and_field(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    think = json.loads((folder / "think_results.json").read_text())
    del think[4]["model_response"]
    (folder / "think_results.json").write_text(json.dumps(think))
    with pytest.raises(HinttuneError, match=r"think_results.json: record 4: field 'model_response' is missing"):
        import_official(folder, tmp_path / "imp")


def test_files_of_different_lengths_are_refused(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    instruct = json.loads((folder / "instruct_results.json").read_text())
    (folder / "instruct_results.json").write_text(json.dumps(instruct[:-1]))
    with pytest.raises(HinttuneError, match="7 records and instruct_results.json 6"):
        import_official(folder, tmp_path / "imp")


def test_several_models_need_a_choice(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    shutil.copytree(folder / "instruct-model", folder / "other-model")
    with pytest.raises(HinttuneError, match="instruct-model, other-model.*--model"):
        import_official(folder, tmp_path / "imp")
    assert import_official(folder, tmp_path / "imp", model="other-model").assignments


def test_a_prefix_that_is_not_the_traces_own_is_an_error(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    path = folder / "instruct-model" / "k_prefix.json"
    k_prefix = json.loads(path.read_text())
    hit = next(i for i, e in enumerate(k_prefix["results"]) if e["success"] and e["k_value"] == 2)
    k_prefix["results"][hit]["prefix"] = "Something else. "
    path.write_text(json.dumps(k_prefix))
    with pytest.raises(HinttuneError, match=rf"results\[{hit}\]: field 'prefix'.*--keywords"):
        import_official(folder, tmp_path / "imp")


def test_a_grading_file_shorter_than_the_traces_is_refused(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    grading = json.loads((folder / "llm_grading_think.json").read_text())
    (folder / "llm_grading_think.json").write_text(json.dumps(grading[:-1]))
    with pytest.raises(HinttuneError, match="llm_grading_think.json has 6 records and think_results.json 7"):
        import_official(folder, tmp_path / "imp")


def test_a_problem_with_no_prefix_result_is_skipped_as_merge_py_does(exported, tmp_path):
    from test_official_oracle import MERGE, run_merge

    folder = copy_of(exported, tmp_path)
    k_path = folder / "instruct-model" / "k_prefix.json"
    k_prefix = json.loads(k_path.read_text())
    dropped = k_prefix["results"].pop(0)  # its search raised: no entry
    k_path.write_text(json.dumps(k_prefix))
    cli = CliRunner().invoke(app, ["import-official", str(folder), "-o", str(tmp_path / "imp")])
    assert cli.exit_code == 0, cli.output
    assert "1 problem graded wrong with no k_prefix.json entry" in " ".join(cli.output.split())
    records = json.loads((tmp_path / "imp" / "export" / "hint_tuning.json").read_text())
    assert dropped["problem"] not in {r["instruction"] for r in records} and len(records) == 6
    excluded = [json.loads(line) for line in (tmp_path / "imp" / "export" / "excluded.jsonl").open()]
    assert [e["problem"] for e in excluded] == [dropped["problem"]] and "merge.py skips" in excluded[0]["reason"]
    if MERGE.exists():  # the official merge makes the same records of the same files
        from hinttune.construction.states import FULL_MARKER, SPARSE_MARKER

        openers = [r["output"].split("\n")[1] for r in records
                   if not r["output"].startswith((f"<think>\n{SPARSE_MARKER.strip()}", f"<think>\n{FULL_MARKER.strip()}"))]
        merged = tmp_path / "merged.json"
        done = run_merge(folder, openers, merged)
        assert done.returncode == 0, done.stderr
        assert merged.read_bytes() == (tmp_path / "imp" / "export" / "hint_tuning.json").read_bytes()


def _edit(folder, name, change):
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("name,change,message", [
    ("llm_grading_think.json", lambda d: d[0].update(question_id=True),
     r"llm_grading_think.json: record 0: field 'question_id' is True, not a position"),
    ("llm_grading_think.json", lambda d: d[1].update(question_id=0),
     r"record 1: field 'question_id' is 0, as in record 0: each problem has one entry"),
    ("k_prefix.json", lambda d: d["results"][1].update(_original_idx=d["results"][0]["_original_idx"]),
     r"results\[1\]: field '_original_idx' is \d+, as in results\[0\]"),
    ("think_results.json", lambda d: d[2].setdefault("metrics", {}).update(solution_tokens="120"),
     r"think_results.json: record 2.metrics: field 'solution_tokens' should be a token count .* str '120'"),
    ("k_prefix.json", lambda d: d["results"][0].update(instruct_tokens="9"),
     r"results\[0\]: field 'instruct_tokens' should be a token count"),
])
def test_mistyped_and_repeated_fields_are_named(exported, tmp_path, name, change, message):
    folder = copy_of(exported, tmp_path)
    target = next(folder.rglob(name))
    _edit(target.parent, name, change)
    with pytest.raises(HinttuneError, match=message):
        import_official(folder, tmp_path / "imp")


def test_a_lone_surrogate_is_named_not_written(exported, tmp_path):
    folder = copy_of(exported, tmp_path)
    text = (folder / "think_results.json").read_text()
    (folder / "think_results.json").write_text(text.replace('"model_response": "', '"model_response": "\\ud800', 1))
    with pytest.raises(HinttuneError, match=r"think_results.json: record 0: field 'model_response' holds \\ud800"):
        import_official(folder, tmp_path / "imp")
