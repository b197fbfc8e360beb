"""Every result says what made it: the versions of hinttune, the engine and the libraries."""

import importlib.metadata

from hinttune.core.provenance import versions


def test_versions_are_the_installed_ones():
    found = versions()
    assert found["hinttune"] == importlib.metadata.version("hinttune")
    assert found["transformers"] == importlib.metadata.version("transformers")
    assert "python" in found and "not-a-library" not in found


def test_a_runs_summary_and_an_evals_results_carry_them(tmp_path):
    import json

    import pytest

    pytest.importorskip("math_verify")
    from hinttune.construction.pipeline import build
    from hinttune.core.config import validate_config
    from test_pipeline import config_dict

    build(validate_config(config_dict(tmp_path)))
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["versions"] == versions()
