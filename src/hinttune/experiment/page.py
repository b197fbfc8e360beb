"""``hinttune view EXPERIMENT_DIR``: the experiment's table and plot as a page
(``EXPERIMENT_DIR/view/index.html``), each model's row linking to its evaluation folder."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

from hinttune.core.errors import HinttuneError
from hinttune.core.files import read_json, write_text
from hinttune.experiment.table import CAPTION, COLUMNS, _cell

STYLE = ("body{font-family:system-ui,sans-serif;margin:20px}table{border-collapse:collapse}"
         "th,td{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right}"
         "th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}.ref{font-weight:600}"
         "p.caption{color:#555;max-width:900px}img{max-width:100%}")


def write_page(folder: Path, output: Path | None = None) -> Path:
    table_file = folder / "experiment.json"
    if not table_file.exists():
        raise HinttuneError(f"{folder}: no experiment.json (run `hinttune experiment` first)")
    table = read_json(table_file)
    out = output or folder / "view"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for row in table["rows"]:
        cells = _cell(row)
        label = row["model"]
        link = "base" if label == "base" else f"{label}-s{table['seeds'][0]}"
        cells["model"] = f'<a href="{html.escape(str(Path("..") / "evals" / link))}">{html.escape(label)}</a>'
        css = ' class="ref"' if label == table["reference"] else ""
        rows.append(f"<tr{css}>" + "".join(
            f"<td>{v if k == 'model' else html.escape(v)}</td>" for k, v in cells.items()) + "</tr>")
    picture = ""
    if (folder / "experiment.png").exists():
        shutil.copyfile(folder / "experiment.png", out / "experiment.png")
        picture = '<img src="experiment.png" alt="accuracy against mean output tokens">'
    steps = ", ".join(f"{html.escape(str(k))} {v}" for k, v in table["steps"].items())
    missing = table.get("missing_jobs") or []
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>experiment {html.escape(table['name'])}</title>
<style>{STYLE}</style></head><body>
<h1>Experiment {html.escape(table['name'])}</h1>
<p>Reference: {html.escape(table['reference'])} · equal {html.escape(table['match'])} (steps: {steps}) ·
seeds {html.escape(str(table['seeds']))}{' · <b>not run yet: ' + html.escape(', '.join(missing)) + '</b>' if missing else ''}</p>
<table><thead><tr>{''.join(f'<th>{html.escape(c)}</th>' for c in COLUMNS)}</tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<p class="caption">{html.escape(CAPTION)}.</p>
{picture}
</body></html>
"""
    return write_text(out / "index.html", page)
