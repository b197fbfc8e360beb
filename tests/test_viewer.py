"""The run viewer: what the page holds, per problem and overall, and (slow) what a real
headless browser shows of it."""

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from hinttune.cli import app
from hinttune.construction.pipeline import build
from hinttune.core.config import validate_config

from test_pipeline import config_dict

pytest.importorskip("math_verify")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("view")
    build(validate_config(config_dict(tmp, assemble={"baselines": ["full"]})))
    return tmp / "run"


def problem_data(folder, n):
    text = (folder / "problems" / f"{n}.js").read_text()
    assert text.startswith("hinttuneProblem(") and text.rstrip().endswith(");")
    return json.loads(text[len("hinttuneProblem("):text.rstrip().rindex(")")])


def test_the_page_holds_every_problem_and_each_ones_search(run):
    out = CliRunner().invoke(app, ["view", str(run)])
    assert out.exit_code == 0, out.output
    page = (run / "view" / "index.html").read_text()
    overview = json.loads(page.split("const DATA = ", 1)[1].split(";\n", 1)[0])
    assert [r["state"] for r in overview["rows"]] == ["No-Hint", "Sparse-Hint", "Full-Hint", "unsolved"]
    assert overview["datasets"] == ["hint-tuning", "baseline:full"]
    beta = problem_data(run / "view", 1)
    assert beta["k_star"] == 2 and len(beta["episodes"]) == 3
    assert [(a["k"], a["correct"]) for a in beta["attempts"]] == [(1, False), (2, True)]
    assert beta["attempts"][1]["text"] == "so it is 4." and beta["target"].endswith("so it is 4.")
    assert beta["elsewhere"]["baseline:full"]["state"] == "full trace"
    delta = problem_data(run / "view", 3)
    assert delta["target"] == "" and "no hint worked" in delta["cause"]


def test_text_that_closes_a_script_cannot_break_the_page(tmp_path):
    data = config_dict(tmp_path)
    data["instruct"]["answers"]["alpha"] = "</script><script>alert(1)</script> The answer is 2."
    build(validate_config(data))
    CliRunner().invoke(app, ["view", str(tmp_path / "run")])
    for path in (tmp_path / "run" / "view").rglob("*"):
        if path.is_file():
            assert "</script><script>alert" not in path.read_text()


def test_an_html_comment_opener_in_a_problem_is_escaped_in_the_page(tmp_path):
    """``<!--<script>`` inside a script element makes the HTML parser swallow the rest of the
    page (the script never closes): no ``<``, ``>`` or ``&`` of a run's text reaches the page raw."""
    data = config_dict(tmp_path)
    problems = json.loads((tmp_path / "problems.json").read_text())
    problems[0]["problem"] = "alpha: 1+1 <!--<script> & -->"
    (tmp_path / "problems.json").write_text(json.dumps(problems))
    build(validate_config(data))
    assert CliRunner().invoke(app, ["view", str(tmp_path / "run")]).exit_code == 0
    page = (tmp_path / "run" / "view" / "index.html").read_text()
    script = page.split("const DATA = ", 1)[1].split(";\n", 1)[0]
    assert "<" not in script and ">" not in script and "&" not in script
    assert json.loads(script)["rows"][0]["problem"] == "alpha: 1+1 <!--<script> & -->"
    assert problem_data(tmp_path / "run" / "view", 0)["problem"] == "alpha: 1+1 <!--<script> & -->"


@pytest.mark.slow
def test_a_headless_browser_shows_the_overview_and_a_problem(run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        pytest.skip("no chromium: install it to render the page (Debian: apt-get install chromium)")
    CliRunner().invoke(app, ["view", str(run)])
    index = (run / "view" / "index.html").resolve()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
             "--window-size=1400,1000"]
    dom = subprocess.run(flags + ["--dump-dom", f"{index.as_uri()}#p=1"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "4 shown" in html and "beta: 2+2" in html  # the table
    assert "K* = 2: the hint ends here" in html and "so it is 4." in html  # the problem opened
    chart = html[html.index('id="states"'):html.index('id="kstar"')]  # states from easy to hard
    shown = [s for s in ("No-Hint", "Sparse-Hint", "Full-Hint", "unsolved") if s in chart]
    assert len(shown) >= 3 and sorted(shown, key=chart.index) == shown, chart
    for name, target in (("overview", ""), ("problem", "#p=1")):
        shot = tmp_path / f"{name}.png"
        done = subprocess.run(flags + [f"--screenshot={shot}", f"{index.as_uri()}{target}"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
