#!/usr/bin/env python3
"""Checks deploy/grafana/sluice-dashboard.json beyond "is it JSON":

* every panel, target and query variable uses the ${datasource} template variable;
* the template variables datasource, instance, group and topic exist;
* panel ids are unique;
* every PromQL expression (panel targets, annotations, variable queries' selectors) parses:
  Grafana variables are replaced by sample values and the expressions are handed to
  `promtool check rules` as recording rules.

Usage: deploy/check-dashboard.py [DASHBOARD.json]   (promtool on PATH, or $PROMTOOL)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "grafana", "sluice-dashboard.json")
promtool = os.environ.get("PROMTOOL", "promtool")
DS = "${datasource}"
errors = []

with open(path, encoding="utf-8") as f:
    dash = json.load(f)

variables = {v.get("name"): v for v in dash.get("templating", {}).get("list", [])}
for name in ("datasource", "instance", "group", "topic"):
    if name not in variables:
        errors.append(f"template variable ${name} is missing")
if variables.get("datasource", {}).get("query") != "prometheus":
    errors.append("template variable $datasource must be of Prometheus data sources")

exprs = []  # (where, expr)


def check_ds(where, ds):
    if not isinstance(ds, dict) or ds.get("uid") != DS or ds.get("type") != "prometheus":
        errors.append(f"{where}: datasource must be {{type: prometheus, uid: {DS}}}, got {ds!r}")


def walk(panels):
    for p in panels:
        yield p
        yield from walk(p.get("panels", []))


ids = set()
for p in walk(dash.get("panels", [])):
    where = f"panel {p.get('id')} ({p.get('title')!r})"
    if p.get("id") in ids:
        errors.append(f"{where}: duplicate panel id")
    ids.add(p.get("id"))
    if p.get("type") == "row":
        continue
    check_ds(where, p.get("datasource"))
    if not p.get("targets"):
        errors.append(f"{where}: no targets")
    for t in p.get("targets", []):
        check_ds(f"{where} target {t.get('refId')}", t.get("datasource"))
        exprs.append((f"{where} target {t.get('refId')}", t.get("expr", "")))

for a in dash.get("annotations", {}).get("list", []):
    if a.get("builtIn"):
        continue
    check_ds(f"annotation {a.get('name')!r}", a.get("datasource"))
    exprs.append((f"annotation {a.get('name')!r}", a.get("expr", "")))

for name, v in variables.items():
    if v.get("type") != "query":
        continue
    check_ds(f"variable ${name}", v.get("datasource"))
    q = v.get("query")
    q = q.get("query", "") if isinstance(q, dict) else q
    m = re.fullmatch(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*", q or "")
    if not m:
        errors.append(f"variable ${name}: expected label_values(<selector>, <label>), got {q!r}")
    else:
        exprs.append((f"variable ${name}", m.group(1)))

SAMPLE = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
          "$instance": ".*", "$group": ".*", "$topic": ".*"}


def substitute(expr):
    for k in sorted(SAMPLE, key=len, reverse=True):
        expr = expr.replace("${" + k[1:] + "}", SAMPLE[k]).replace(k, SAMPLE[k])
    left = re.findall(r"\$\{?\w+", expr)
    return expr, left


rules = []
for i, (where, expr) in enumerate(exprs):
    if not expr.strip():
        errors.append(f"{where}: empty expression")
        continue
    e, left = substitute(expr)
    if left:
        errors.append(f"{where}: unknown variable(s) {left}")
        continue
    rules.append({"record": f"dashboard_expr_{i}", "expr": e, "_where": where})

if not errors:
    with tempfile.TemporaryDirectory() as d:
        for r in rules:
            f = os.path.join(d, "rules.yml")
            # One file per expression, so a failure names its panel.
            with open(f, "w", encoding="utf-8") as out:
                json.dump({"groups": [{"name": "dashboard", "rules": [
                    {"record": r["record"], "expr": r["expr"]}]}]}, out)
            res = subprocess.run([promtool, "check", "rules", f], capture_output=True, text=True)
            if res.returncode != 0:
                errors.append(f"{r['_where']}: PromQL does not parse:\n{res.stdout}{res.stderr}")

if errors:
    for e in errors:
        print(f"check-dashboard: {path}: {e}", file=sys.stderr)
    sys.exit(1)
print(f"check-dashboard: {os.path.relpath(path)}: {len(ids)} panels, {len(exprs)} expressions parse, datasource ${{datasource}} everywhere")
