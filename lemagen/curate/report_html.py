"""`lemagen stats --html`: one self-contained page (no network: data, style and script
inline) with the report's charts, tables of yield and cost per reasoner and per corrector, the
funnel by every carried field, and a browser of kept and rejected corrections.

Every text that came from a model or an input (questions, steps, explanations, model names,
field values) is escaped here: a solution holding `<script>` shows as text and never runs.
"""

from __future__ import annotations

import difflib
import html
import json
import re
from typing import Any

from lemagen.curate.report import Details, Example
from lemagen.curate.stats import StatsReport, cost_text

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>lemagen report</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 2em; }
.chart svg { width: 100%; height: auto; }
.bar { fill: #4c78a8; }
.label { font-size: 12px; fill: #222; } .value { font-size: 12px; fill: #555; }
table { border-collapse: collapse; } td, th { padding: 2px 10px; text-align: left; }
th { border-bottom: 1px solid #ccc; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
details.example { border: 1px solid #ddd; border-radius: 6px; margin: 0.6em 0;
  padding: 0.3em 0.8em; }
details.example > summary { cursor: pointer; color: #333; }
details.example[open] > summary { margin-bottom: 0.5em; }
.tag { display: inline-block; border-radius: 3px; padding: 0 5px; font-size: 12px; }
.tag.kept { background: #d9f2dd; color: #1d5e2a; }
.tag.rejected { background: #fbe0dc; color: #8a2a1c; }
.question { background: #f6f6f6; padding: 0.5em 0.8em; white-space: pre-wrap; }
table.steps { width: 100%; table-layout: fixed; margin: 0.5em 0; }
table.steps td { vertical-align: top; border-top: 1px solid #eee; white-space: pre-wrap;
  word-wrap: break-word; }
table.steps .k { width: 3em; color: #888; }
table.models td:first-child { white-space: nowrap; }
table.steps tr.incorrect td.orig { background: #fde2de; box-shadow: inset 3px 0 #d9534f; }
table.steps td.same { color: #aaa; }
.flag { color: #b52b1c; font-size: 11px; font-weight: 600; display: block; }
del.chg { background: #f7c6bf; text-decoration: line-through; }
mark.chg { background: #c9efcf; }
.num { font-weight: 700; }
.explanation { border-left: 3px solid #f0ad4e; padding: 0.2em 0.8em; background: #fff8ec; }
.answers { color: #555; }
</style>
</head>
<body data-charts="0">
<h1>lemagen report</h1>
<p>__SUMMARY__</p>
<h2>Funnel</h2><div class="chart" id="funnel"></div>
<h2>Accuracy by reasoner</h2><div class="chart" id="accuracy"></div>
<h2>Incorrect step (kept corrections)</h2><div class="chart" id="step-absolute"></div>
<h2>Relative position of the incorrect step</h2><div class="chart" id="step-relative"></div>
<h2>Error types by reasoner (share of its analysed mistakes)</h2>
<div class="chart" id="error-types"></div>
<h2>Dropped or set aside</h2>__REASONS__
__DETAILS__
<script type="application/json" id="report">__DATA__</script>
<script>
(function () {
  var report = JSON.parse(document.getElementById("report").textContent);
  var NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    var node = document.createElementNS(NS, name);
    for (var k in attrs) node.setAttribute(k, attrs[k]);
    if (text !== undefined) node.textContent = text;
    return node;
  }
  // A chart of counts scales to its largest value; one of shares (`scale` 1) to 100%, so a
  // 50% bar is half the width however many bars there are. No rows, or counts that are all
  // zero (the incorrect-step charts with no kept correction): the section says "none".
  function bars(id, rows, format, labelWidth, scale) {
    var max = scale || 0;
    if (!scale) rows.forEach(function (r) { max = Math.max(max, r[1]); });
    document.body.setAttribute("data-charts",
      String(Number(document.body.getAttribute("data-charts")) + 1));
    if (rows.length === 0 || (!scale && max === 0)) {
      var none = document.createElement("p");
      none.className = "none";
      none.textContent = "none";
      document.getElementById(id).appendChild(none);
      return;
    }
    var rowH = 24, labelW = labelWidth || 200, width = 700, svg = el("svg", {
      viewBox: "0 0 " + width + " " + Math.max(rowH, rows.length * rowH + 4),
      role: "img", "aria-label": id
    });
    rows.forEach(function (r, i) {
      var w = max > 0 ? (width - labelW - 90) * r[1] / max : 0;
      var y = i * rowH + 2;
      svg.appendChild(el("text", {x: 0, y: y + 16, "class": "label"}, r[0]));
      svg.appendChild(el("rect", {x: labelW, y: y, width: w.toFixed(1), height: rowH - 6,
                                  "class": "bar", "data-value": r[1]}));
      svg.appendChild(el("text", {x: labelW + w + 6, y: y + 16, "class": "value"}, format(r[1])));
    });
    document.getElementById(id).appendChild(svg);
  }
  function entries(obj) { return Object.keys(obj).map(function (k) { return [k, obj[k]]; }); }
  var count = function (v) { return String(v); };
  var percent = function (v) { return (100 * v).toFixed(1) + "%"; };
  bars("funnel", entries(report.funnel), count);
  bars("accuracy", entries(report.accuracy_by_reasoner).map(function (e) {
    return [e[0], e[1].accuracy];
  }), percent, 200, 1);
  bars("step-absolute", entries(report.incorrect_step.absolute).map(function (e) {
    return ["step " + e[0], e[1]];
  }), count);
  bars("step-relative", entries(report.incorrect_step.relative), count);
  var types = [];
  entries(report.error_types_by_reasoner).forEach(function (m) {
    entries(m[1].types).forEach(function (t) { types.push([m[0] + ": " + t[0], t[1].share]); });
  });
  bars("error-types", types, percent, 330, 1);
})();
</script>
</body>
</html>
"""


def render_html(report: StatsReport, details: Details | None = None) -> str:
    """One self-contained page: data inline, charts drawn by inline script, no network."""
    data = json.dumps(report.to_dict()).replace("</", "<\\/")
    funnel = report.funnel
    summary = (
        f"{funnel.problems} problems, {funnel.samples} samples, {funnel.wrong} wrong, "
        f"{funnel.corrections} corrections, {funnel.kept} kept; "
        f"cost {cost_text(report)}"
    )
    reasons = "".join(
        f"<tr><td>{_e(k)}</td><td class=n>{v}</td></tr>" for k, v in report.reasons.items()
    )
    table = (
        f"<table><tr><th>reason</th><th class=n>rows</th></tr>{reasons}</table>"
        if reasons
        else "<p>none</p>"
    )
    return (
        _PAGE.replace("__SUMMARY__", _e(summary))
        .replace("__REASONS__", table)
        .replace("__DETAILS__", "" if details is None else _details(details))
        .replace("__DATA__", data)
    )


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, kind: str = "") -> str:
    if value is None:
        return "n/a"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "$":
        return f"${value:.4f}"
    return str(value)


def _details(details: Details) -> str:
    return "\n".join([_model_tables(details), _breakdowns(details), _examples(details)])


def _model_tables(details: Details) -> str:
    tables = details.model_tables()
    out = ['<h2 id="yield">Yield and cost per reasoner and per corrector</h2>']
    for kind, columns, yield_name in (
        ("reasoners", ("samples", "wrong", "corrections", "kept"), "kept per sample"),
        ("correctors", ("corrections", "kept"), "kept per correction"),
    ):
        rows = tables[kind]
        if not rows:
            continue
        keys = ("rows", *columns[1:]) if kind == "reasoners" else ("rows", "kept")
        head = "".join(f"<th class=n>{c}</th>" for c in columns)
        head = (
            f"<tr><th>{kind[:-1]}</th>{head}<th class=n>{yield_name}</th><th class=n>tokens</th>"
            "<th class=n>cost</th><th class=n>cost per kept row</th></tr>"
        )
        body = "".join(
            f"<tr><td>{_e(model)}</td>"
            + "".join(f"<td class=n>{r[k]}</td>" for k in keys)
            + f"<td class=n>{_num(r['yield'], '%')}</td><td class=n>{r['tokens']}</td>"
            f"<td class=n>{_num(r['cost_usd'], '$')}</td>"
            f"<td class=n>{_num(r['cost_per_kept_usd'], '$')}</td></tr>"
            for model, r in rows.items()
        )
        out.append(f'<table class="models" id="{kind}">{head}{body}</table><p></p>')
    return "\n".join(out)


def _breakdowns(details: Details) -> str:
    fields = details.breakdowns()
    if not fields:
        return ""
    out = ['<h2 id="fields">By field</h2>']
    for i, (name, groups) in enumerate(fields.items()):
        body = "".join(
            f"<tr><td>{_e(key)}</td><td class=n>{g['samples']}</td><td class=n>{g['wrong']}"
            f"</td><td class=n>{_num(g['accuracy'], '%')}</td><td class=n>{g['corrections']}"
            f"</td><td class=n>{g['kept']}</td><td class=n>{_num(g['kept_share'], '%')}</td></tr>"
            for key, g in groups.items()
        )
        out.append(
            f"<details class=field{' open' if i == 0 else ''}><summary>{_e(name)} "
            f'({len(groups)} values)</summary><table data-field="{_e(name)}"><tr>'
            f"<th>{_e(name)}</th><th class=n>samples</th><th class=n>wrong</th>"
            "<th class=n>accuracy</th><th class=n>corrections</th><th class=n>kept</th>"
            f"<th class=n>kept share</th></tr>{body}</table></details>"
        )
    return "\n".join(out)


def _examples(details: Details) -> str:
    out = ['<h2 id="examples">Examples</h2>']
    for kind, chosen in (("kept", details.kept), ("rejected", details.rejected)):
        total = details.seen[kind]
        out.append(
            f"<h3>{kind.capitalize()} corrections: {len(chosen)} of {total}, drawn at random</h3>"
        )
        if not chosen:
            out.append("<p>none</p>")
        out.extend(_example(ex, kind, open_=i == 0) for i, ex in enumerate(chosen))
    return "\n".join(out)


def _example(ex: Example, kind: str, *, open_: bool) -> str:
    step = f"incorrect step {ex.incorrect_step}" if ex.incorrect_step else "no incorrect step"
    reason = f" · {_e(ex.reason)}" if ex.reason else ""
    summary = (
        f'<span class="tag {kind}">{kind}{reason}</span> {_e(ex.id)} · {_e(step)} · '
        f"reasoner {_e(ex.reasoner)} → corrector {_e(ex.corrector)}"
    )
    explanation = (
        f'<div class="explanation"><b>Explanation.</b> {_e(ex.explanation)}</div>'
        if ex.explanation
        else ""
    )
    return (
        f'<details class="example {kind}"{" open" if open_ else ""}><summary>{summary}'
        f'</summary><div class="question">{_e(ex.question)}</div>'
        f"{_steps(ex)}{explanation}"
        f'<p class="answers">gold <b>{_e(ex.gold)}</b>; the correction answers '
        f"<b>{_e(ex.pred if ex.pred is not None else 'nothing')}</b></p></details>"
    )


def _steps(ex: Example) -> str:
    """The original steps and the corrected ones side by side, aligned by step number."""
    start = ex.corrected_from or (len(ex.original) + 1 if not ex.corrected else 1)
    n = max(len(ex.original), start - 1 + len(ex.corrected))
    rows = []
    for k in range(1, n + 1):
        old = ex.original[k - 1] if k <= len(ex.original) else None
        new = ex.corrected[k - start] if start <= k < start + len(ex.corrected) else None
        if k < start:
            left, right = _e(old or ""), '<span class="same">(unchanged)</span>'
        elif old is not None and new is not None:
            left, right = _diff(old, new)
        else:
            left, right = _e(old or ""), _e(new or "")
        incorrect = k == ex.incorrect_step
        flag = '<span class="flag">incorrect step</span>' if incorrect else ""
        rows.append(
            f"<tr{' class=incorrect' if incorrect else ''}><td class=k>{k}</td>"
            f'<td class=orig>{flag}{left}</td><td class="new{" same" if k < start else ""}">'
            f"{right}</td></tr>"
        )
    return (
        '<table class="steps"><tr><th class=k>step</th>'
        f"<th>original solution ({_e(ex.reasoner)})</th>"
        f"<th>corrected ({_e(ex.corrector)})</th></tr>{''.join(rows)}</table>"
    )


_TOKEN = re.compile(r"\d[\d,]*(?:\.\d+)?|\w+|\s+|[^\w\s]")


def _diff(old: str, new: str) -> tuple[str, str]:
    """Both steps escaped, with what changed marked: struck out in the original, highlighted
    in the correction; numbers in bold."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    left: list[str] = []
    right: list[str] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            left.append(_e("".join(a[i1:i2])))
            right.append(_e("".join(b[j1:j2])))
            continue
        left.append(_marked(a[i1:i2], "del"))
        right.append(_marked(b[j1:j2], "mark"))
    return "".join(left), "".join(right)


def _marked(tokens: list[str], tag: str) -> str:
    text = "".join(tokens)
    if not text.strip():
        return _e(text)
    number = any(t[:1].isdigit() for t in tokens)
    cls = "chg num" if number else "chg"
    return f'<{tag} class="{cls}">{_e(text)}</{tag}>'
