import json

import pytest

from hinttune.core.config import ProblemsConfig
from hinttune.core.errors import HinttuneError
from hinttune.core.problems import load_problems, problem_id

RECORDS = [{"problem": "What is 1+1?", "gold_answer": "2"},
           {"problem": "What is 2+2?", "gold_answer": "4"}]


def load(source, **kw):
    return load_problems(ProblemsConfig(source=str(source), **kw))


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def test_demo_set_is_shipped():
    loaded = load("demo")
    assert 10 <= len(loaded.problems) <= 20
    assert all(p.gold_answer.isdigit() for p in loaded.problems)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "parquet", "disk"])
def test_each_format_loads_the_same_problems(tmp_path, fmt):
    if fmt == "json":
        source = write_json(tmp_path / "p.json", RECORDS)
    elif fmt == "jsonl":
        source = tmp_path / "p.jsonl"
        source.write_text("\n".join(json.dumps(r) for r in RECORDS) + "\n\n")
    elif fmt == "parquet":
        pa = pytest.importorskip("pyarrow")
        import pyarrow.parquet as pq
        source = tmp_path / "p.parquet"
        pq.write_table(pa.Table.from_pylist(RECORDS), source)
    else:
        datasets = pytest.importorskip("datasets")
        source = tmp_path / "ds"
        datasets.DatasetDict({"train": datasets.Dataset.from_list(RECORDS)}).save_to_disk(source)
    loaded = load(source)
    assert [(p.problem, p.gold_answer, p.index) for p in loaded.problems] == [
        ("What is 1+1?", "2", 0), ("What is 2+2?", "4", 1)]


def test_ids_are_stable_and_whitespace_insensitive():
    assert problem_id("What is  1+1?", "2") == problem_id("What is 1+1?\n", " 2")
    assert problem_id("What is 1+1?", "2") != problem_id("What is 1+1?", "3")
    assert len(problem_id("a", "b")) == 16


def test_aliases_and_field_mapping(tmp_path):
    # MATH-500 style: both answer and solution; the short answer wins
    src = write_json(tmp_path / "m.json", [{"problem": "p", "solution": "long", "answer": "7"}])
    assert load(src).problems[0].gold_answer == "7"
    # GSM8K/AIME25 style: question + answer; AMC style: numeric answers
    src = write_json(tmp_path / "q.json", [{"question": "q", "answer": 27.0}, {"question": "r", "answer": 5}])
    assert [p.gold_answer for p in load(src).problems] == ["27.0", "5"]
    src = write_json(tmp_path / "c.json", [{"text": "t", "target": "x"}])
    loaded = load(src, problem_field="text", answer_field="target")
    assert (loaded.problems[0].problem, loaded.problems[0].gold_answer) == ("t", "x")


@pytest.mark.parametrize("records, message", [
    ([], r"contains no records"),
    ([{"problem": "p"}], r"record 0: no gold answer field"),
    ([RECORDS[0], {"gold_answer": "1"}], r"record 1: no problem text field"),
    ([{"problem": "  ", "gold_answer": "1"}], r"record 0: field 'problem' \(problem text\) is empty"),
    ([{"problem": "p", "gold_answer": None}], r"record 0: field 'gold_answer' \(gold answer\) is empty"),
    (["just a string"], r"record 0: expected an object"),
    ({"a": 1}, r"expected a JSON list"),
])
def test_malformed_records_are_named(tmp_path, records, message):
    src = write_json(tmp_path / "bad.json", records)
    with pytest.raises(HinttuneError, match=r"bad\.json: " + message):
        load(src)


def test_mapped_field_missing_is_named(tmp_path):
    src = write_json(tmp_path / "p.json", RECORDS)
    with pytest.raises(HinttuneError, match=r"record 0: field 'text' \(problem text\) is missing"):
        load(src, problem_field="text")


def test_broken_files(tmp_path):
    with pytest.raises(HinttuneError, match=r"missing\.json: file not found"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(RECORDS[0]) + "\n{oops\n")
    with pytest.raises(HinttuneError, match=r"bad\.jsonl: line 2 is not valid JSON"):
        load(bad)
    broken = tmp_path / "broken.json"
    broken.write_text("[{]")
    with pytest.raises(HinttuneError, match=r"broken\.json: not valid JSON \(line 1"):
        load(broken)
    odd = tmp_path / "p.txt"
    odd.write_text("a,b")
    with pytest.raises(HinttuneError, match="unsupported file type"):
        load(odd)


def test_skip_invalid_lists_what_it_skipped(tmp_path):
    src = write_json(tmp_path / "p.json", [RECORDS[0], {"problem": "x"}, RECORDS[1]])
    loaded = load(src, skip_invalid=True)
    assert len(loaded.problems) == 2
    assert len(loaded.skipped) == 1 and "record 1" in loaded.skipped[0]
    with pytest.raises(HinttuneError, match="no valid records"):
        load(write_json(tmp_path / "q.json", [{"problem": "x"}]), skip_invalid=True)


def test_duplicates_are_reported(tmp_path):
    records = [RECORDS[0], dict(RECORDS[0]), {"problem": "What is 1+1? ", "gold_answer": "two"}]
    loaded = load(write_json(tmp_path / "p.json", records))
    assert len(loaded.problems) == 2  # the exact repeat is kept once
    assert any("record 1 repeats record 0" in d for d in loaded.duplicates)
    assert any("record 2 has the same problem text as record 0" in d for d in loaded.duplicates)


def test_limit(tmp_path):
    assert len(load(write_json(tmp_path / "p.json", RECORDS), limit=1).problems) == 1


def test_the_papers_problem_file(shared_data):
    loaded = load(shared_data / "problems.json")
    assert len(loaded.problems) == 1000 and len({p.id for p in loaded.problems}) == 1000
    # one problem text occurs twice (with different gold answers): reported, both kept
    assert len(loaded.duplicates) == 1 and "421" in loaded.duplicates[0]


@pytest.mark.parametrize("name, count", [("math500", 500), ("aime24", 30), ("aime25", 30),
                                         ("hmmt25", 30), ("amc23", 40), ("gsm8k", 1319)])
def test_benchmark_files_load(shared_data, name, count):
    assert len(load(shared_data / "benchmarks" / f"{name}.jsonl").problems) == count


def test_not_utf8_names_the_byte_and_a_bom_is_fine(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(RECORDS[0]).encode() + b"\n" + '{"problem": "Caf\u00e9?", "gold_answer": "1"}\n'.encode("latin-1"))
    offset = len(json.dumps(RECORDS[0])) + 1 + len('{"problem": "Caf')
    with pytest.raises(HinttuneError, match=rf"latin\.jsonl: not UTF-8 text: byte {offset} \(line 2\)"):
        load(latin)
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(RECORDS).encode())
    assert len(load(bom).problems) == len(RECORDS)


def test_nan_and_infinity_gold_answers_are_named(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"problem": "x?", "gold_answer": 1}\n{"problem": "y?", "gold_answer": NaN}\n')
    with pytest.raises(HinttuneError, match=r"p\.jsonl: line 2: field 'gold_answer' \(gold answer\) is NaN or Infinity"):
        load(src)


def test_jsonl_errors_use_the_files_line_numbers(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps(RECORDS[0]) + "\n\n\n" + json.dumps({"problem": "x"}) + "\n")
    with pytest.raises(HinttuneError, match=r"p\.jsonl: line 4: no gold answer field"):
        load(src)


def test_csv_problem_files(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('problem,answer\n"What is 1+1?",2\n"Commas, quoted: 3+3?",6\n')
    loaded = load(src)
    assert [(p.problem, p.gold_answer) for p in loaded.problems] == [
        ("What is 1+1?", "2"), ("Commas, quoted: 3+3?", "6")]
    bad = tmp_path / "bad.csv"
    bad.write_text("problem,answer\nonly a problem,\n")
    with pytest.raises(HinttuneError, match=r"bad\.csv: row 2: field 'answer'"):
        load(bad)


def test_a_csv_row_with_an_unquoted_comma_is_named_never_realigned(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text("problem,gold_answer\nWhat is 1,000 + 2?,1002\nWhat is 2+2?,4\n")
    with pytest.raises(HinttuneError, match=r"p\.csv: row 2: 3 fields where the header has 2"):
        load(src)
    loaded = load(src, skip_invalid=True)  # the bad row alone is skipped, the good one kept
    assert [(p.problem, p.gold_answer) for p in loaded.problems] == [("What is 2+2?", "4")]
    assert len(loaded.skipped) == 1 and "row 2" in loaded.skipped[0]


def test_a_ragged_csv_row_is_blamed_on_itself(tmp_path):
    src = tmp_path / "p.csv"
    src.write_text('problem,gold_answer\n"What is 1+1?",2\n"What is\n2+2?"\n"What is 3+3?",6\n')
    with pytest.raises(HinttuneError, match=r"row 3: 1 fields"):
        load(src)


@pytest.mark.parametrize("text, match", [
    ('[{"problem": "x\\ud800y", "gold_answer": "1"}]', "unpaired surrogate"),
    ('[{"problem": "x", "gold_answer": ' + "9" * 5000 + "}]", "out of range"),
    ("[" * 6000 + "]" * 6000, "nested too deeply"),
])
def test_hostile_json_is_one_line(tmp_path, text, match):
    src = tmp_path / "p.json"
    src.write_text(text)
    with pytest.raises(HinttuneError, match=match):
        load(src)


def test_an_unpaired_surrogate_is_skipped_with_skip_invalid(tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"problem": "x\\ud800", "gold_answer": "1"}\n{"problem": "fine", "gold_answer": "2"}\n')
    loaded = load(src, skip_invalid=True)
    assert [p.problem for p in loaded.problems] == ["fine"] and "line 1" in loaded.skipped[0]


def test_a_corrupt_parquet_file_is_one_line(tmp_path):
    pytest.importorskip("pyarrow")
    src = tmp_path / "p.parquet"
    src.write_bytes(b"PAR1" + b"\x00garbage" * 20)
    with pytest.raises(HinttuneError, match=r"p\.parquet: could not read as Parquet"):
        load(src)


def test_a_csv_row_whose_cut_number_and_missing_value_cancel_out_is_named(tmp_path):
    """"What is 1,000 + 2?" unquoted, and the last value missing: the field count matches the
    header's, but the problem would be "What is 1" and the gold "000 + 2?"."""
    src = tmp_path / "p.csv"
    src.write_text("problem,gold_answer,source\nWhat is 1,000 + 2?,\nWhat is 20 times 5,100,book\n")
    with pytest.raises(HinttuneError, match=r"p\.csv: row 2: fields 1 and 2 read as 'What is 1' and '000 \+ 2\?'"):
        load(src)
    loaded = load(src, skip_invalid=True)  # a plain number after a problem is a value
    assert [(p.problem, p.gold_answer) for p in loaded.problems] == [("What is 20 times 5", "100")]


@pytest.mark.parametrize("name,text,message", [
    ("p.json", '[{"problem": "a", "gold_answer": "1"}, {"problem": "b", "gold_answer": "2", "problem": "c"}]',
     r"p\.json: the object at \[1\]: the key 'problem' is given twice"),
    ("p.jsonl", '{"problem": "a", "gold_answer": "1"}\n{"problem": "b", "gold_answer": "2", "gold_answer": "3"}\n',
     r"p\.jsonl: line 2: the key 'gold_answer' is given twice"),
    ("p.csv", "problem,answer,answer\nq,1,2\n", r"p\.csv: the header names the column 'answer' twice \(columns 2 and 3\)"),
])
def test_a_key_given_twice_is_an_error_naming_where(tmp_path, name, text, message):
    src = tmp_path / name
    src.write_text(text)
    with pytest.raises(HinttuneError, match=message):
        load(src)
