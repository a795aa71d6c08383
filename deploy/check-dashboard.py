#!/usr/bin/env python3
"""Checks deploy/grafana/sluice-dashboard.json beyond "is it JSON":

* every panel, target and query variable uses the ${datasource} template variable;
* the template variables datasource, instance, group and topic exist;
* panel ids are unique;
* every PromQL expression (panel targets, annotations, variable queries' selectors) parses:
  Grafana variables are replaced by sample values and the expressions are handed to
  `promtool check rules` as recording rules;
* panels do not overlap and fit the 24-column grid;
* a table that merges several queries has each as an instant table query, and its columns
  (`Value #<refId>`) name targets that exist;
* a query that joins a group's committed offset with its fetch position, end offset or
  fetched bytes does not filter by $instance: those come from different sidecars (the
  coordinator's and the partition leaders'), so one selected sidecar would empty the join;
* the queries named in grafana/sluice-dashboard.test.yml give the results it expects, on the
  series it gives (promtool test rules; see that file).

Usage: deploy/check-dashboard.py [DASHBOARD.json [QUERY-TESTS.yml]]   (promtool on PATH, or $PROMTOOL)
"""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "grafana", "sluice-dashboard.json")
tests_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "grafana", "sluice-dashboard.test.yml")
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


# Metrics whose series for one group/partition come from different sidecars: the committed
# offset from the coordinator's (or every sidecar's, lookup on), the rest from the leaders'.
COMMITTED = "sluice_consumer_committed_offset"
FROM_LEADERS = {"sluice_consumer_fetch_position", "sluice_partition_end_offset",
                "sluice_consumer_fetched_bytes_total", "sluice_consumer_redelivered_bytes_total"}


def check_table(where, p):
    """A table merging several queries: instant table queries, columns that name targets."""
    refs = {t.get("refId") for t in p.get("targets", [])}
    if len(refs) != len(p.get("targets", [])):
        errors.append(f"{where}: duplicate refId")
    if not any(x.get("id") == "merge" for x in p.get("transformations", [])):
        return
    for t in p.get("targets", []):
        if not t.get("instant") or t.get("range") or t.get("format") != "table":
            errors.append(f"{where} target {t.get('refId')}: a merged table needs instant, format table")
    for x in p.get("transformations", []):
        for key in ("indexByName", "renameByName", "excludeByName"):
            for col in x.get("options", {}).get(key, {}):
                m = re.fullmatch(r"Value #(.+)", col)
                if m and m.group(1) not in refs:
                    errors.append(f"{where}: column {col!r} names no target")


def cells(p):
    g = p.get("gridPos", {})
    return {(x, y) for x in range(g.get("x", 0), g.get("x", 0) + g.get("w", 0))
            for y in range(g.get("y", 0), g.get("y", 0) + g.get("h", 0))}


ids = set()
panels_by_id = {}
taken = {}  # grid cell -> panel id, top level (panels inside collapsed rows are laid out apart)
for p in dash.get("panels", []):
    g = p.get("gridPos", {})
    where = f"panel {p.get('id')} ({p.get('title')!r})"
    if g.get("x", 0) < 0 or g.get("w", 0) <= 0 or g.get("h", 0) <= 0 or g.get("x", 0) + g.get("w", 0) > 24:
        errors.append(f"{where}: gridPos {g} does not fit the 24-column grid")
    for c in cells(p):
        if c in taken:
            errors.append(f"{where}: overlaps panel {taken[c]} at column {c[0]}, row {c[1]}")
            break
        taken[c] = p.get("id")
for p in walk(dash.get("panels", [])):
    where = f"panel {p.get('id')} ({p.get('title')!r})"
    if p.get("id") in ids:
        errors.append(f"{where}: duplicate panel id")
    ids.add(p.get("id"))
    panels_by_id[p.get("id")] = p
    if p.get("type") == "row":
        continue
    check_ds(where, p.get("datasource"))
    if not p.get("targets"):
        errors.append(f"{where}: no targets")
    if p.get("type") == "table":
        check_table(where, p)
    for t in p.get("targets", []):
        check_ds(f"{where} target {t.get('refId')}", t.get("datasource"))
        e = t.get("expr", "")
        exprs.append((f"{where} target {t.get('refId')}", e))
        used = set(re.findall(r"sluice_[a-z_]+", e))
        if COMMITTED in used and used & FROM_LEADERS and "$instance" in e:
            errors.append(f"{where} target {t.get('refId')}: joins {COMMITTED} with "
                          f"{', '.join(sorted(used & FROM_LEADERS))} across sidecars, so it must not "
                          "filter by $instance")

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


def substitute(expr, values=None):
    """`expr` with Grafana's variables replaced (`values` by name, regular expressions as
    Grafana would put them in, e.g. {"instance": "broker-2:9464"}; else the samples: All), and
    the variables left over."""
    sample = dict(SAMPLE)
    for k, v in (values or {}).items():
        sample["$" + k] = v
    for k in sorted(sample, key=len, reverse=True):
        expr = expr.replace("${" + k[1:] + "}", sample[k]).replace(k, sample[k])
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


def query_tests():
    """Runs the query tests. In them an expression is written `expr: panel <id> <refId>`,
    optionally followed by `<variable>=<value>`s (default: All); it becomes that target's
    query with those values, and promtool checks the results."""
    placeholder = re.compile(r"^(\s*-?\s*expr:\s*)panel (\d+) (\w+)((?: \w+=\S+)*)\s*$")
    out, n = [], 0
    with open(tests_path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            m = placeholder.match(line)
            if not m:
                out.append(line)
                continue
            where = f"{os.path.basename(tests_path)}:{lineno}: panel {m.group(2)} target {m.group(3)}"
            pid, ref = int(m.group(2)), m.group(3)
            values = dict(v.split("=", 1) for v in m.group(4).split())
            t = next((t for t in panels_by_id.get(pid, {}).get("targets", []) if t.get("refId") == ref), None)
            if t is None:
                errors.append(f"{where}: no such panel target")
                continue
            expr, left = substitute(t.get("expr", ""), values)
            if left:
                errors.append(f"{where}: unknown variable(s) {left}")
            # A JSON string is a YAML double-quoted scalar.
            out.append(f"{m.group(1)}{json.dumps(expr)}\n")
            n += 1
    if errors:
        return 0
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "dashboard.test.yml")
        with open(f, "w", encoding="utf-8") as o:
            o.writelines(out)
        res = subprocess.run([promtool, "test", "rules", f], capture_output=True, text=True)
        if res.returncode != 0:
            errors.append(f"{os.path.basename(tests_path)}: queries do not give what the tests expect:\n{res.stdout}{res.stderr}")
    return n


tested = 0
if not os.path.exists(tests_path):
    errors.append(f"query tests {tests_path} not found")
elif not errors:
    tested = query_tests()

if errors:
    for e in errors:
        print(f"check-dashboard: {path}: {e}", file=sys.stderr)
    sys.exit(1)
print(f"check-dashboard: {os.path.relpath(path)}: {len(ids)} panels, {len(exprs)} expressions parse, datasource ${{datasource}} everywhere, {tested} queries give what {os.path.relpath(tests_path)} expects")
