import json
import math

import pytest

from hinttune.construction.pipeline import build
from hinttune.construction.scale.planning import estimate, expected_probe_cost, write_plan
from hinttune.core.config import validate_config


def test_expected_costs_follow_the_strategies():
    lin, lin_rounds = expected_probe_cost("linear", 40, solvable=1.0)
    assert lin == pytest.approx(sum(range(1, 40)) / 39) and lin_rounds == 39
    sweep, sweep_rounds = expected_probe_cost("sweep", 40)
    assert sweep == 39 and sweep_rounds == 1
    gallop, gallop_rounds = expected_probe_cost("gallop", 40)
    assert gallop < 0.35 * expected_probe_cost("linear", 40)[0]
    assert gallop_rounds <= 2 * math.log2(40) + 2
    assert expected_probe_cost("linear", 1) == (0.0, 0)


def test_plan_uses_stored_traces_and_the_summary_shows_it(tmp_path):
    from test_pipeline import config_dict

    cfg = validate_config(config_dict(tmp_path))
    before = estimate(cfg, throughput=100.0)
    assert before["problems"] == 4 and "assumed N = 40" in before["episodes"]
    build(cfg)
    after = estimate(cfg, throughput=100.0)
    assert "4 stored think traces" in after["episodes"] and after["mean_episodes"] == 3
    assert after["stages"]["probe"]["rounds"] == 2  # linear over k = 1..N-1 with N = 3
    write_plan(cfg, after)
    summary = build(cfg).summary
    assert summary["probing"]["estimate"]["rounds"] == 2
    assert json.loads((tmp_path / "run" / "plan.json").read_text())["strategy"] == "linear"


def test_plan_counts_the_judge_and_prompt_tokens(tmp_path):
    from hinttune.core.errors import HinttuneError
    from test_pipeline import config_dict

    cfg = validate_config(config_dict(tmp_path, grading={"grader": "judge"}))
    plan = estimate(cfg, throughput=100.0)
    judge, probe = plan["stages"]["judge"], plan["stages"]["probe"]
    # every attempt (2 per problem) and every probe continuation is judged
    assert judge["generations"] == pytest.approx(4 * 2 + probe["generations"])
    assert all(stage["prompt_tokens"] > 0 for stage in plan["stages"].values())
    assert "judge" not in estimate(validate_config(config_dict(tmp_path)), 100.0)["stages"]  # math
    with pytest.raises(HinttuneError, match="must be positive"):
        estimate(cfg, throughput=0)


def test_the_plan_table_ends_with_the_total(tmp_path):
    from rich.console import Console

    from hinttune.construction.outputs.report import plan_table
    from test_pipeline import config_dict

    plan = estimate(validate_config(config_dict(tmp_path)), throughput=100.0)
    console = Console(record=True, width=140)
    console.print(plan_table(plan))
    total = next(line for line in console.export_text().splitlines() if line.strip("│ ").startswith("total"))
    hours = sum(s["hours"] for s in plan["stages"].values())
    assert f"{hours:.2f}" in total


def test_throughput_is_one_engines_and_data_parallel_engines_share_the_work(tmp_path):
    from test_pipeline import config_dict

    one = estimate(validate_config(config_dict(tmp_path)), throughput=100.0)["stages"]
    raw = config_dict(tmp_path)
    for role in ("think", "instruct"):
        raw[role]["data_parallel_size"] = 4
    four = estimate(validate_config(raw), throughput=100.0)["stages"]
    for stage in ("attempts", "probe"):
        assert four[stage]["hours"] == pytest.approx(one[stage]["hours"] / 4)
        assert four[stage]["tokens"] == pytest.approx(one[stage]["tokens"])


def test_plan_makes_no_run_folder(tmp_path):
    from typer.testing import CliRunner

    from hinttune.cli import app
    from test_pipeline import config_dict

    cfg = validate_config(config_dict(tmp_path))
    assert write_plan(cfg, estimate(cfg, 100.0)) is None and not (tmp_path / "run").exists()
    problems = tmp_path / "problems.json"
    problems.write_text(json.dumps([{"problem": "1+1?", "answer": "2"}]))
    result = CliRunner().invoke(app, ["plan", "-c", "paper", "-p", str(problems), "-o", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    assert "not written" in result.output and not (tmp_path / "new").exists()
