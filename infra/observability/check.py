#!/usr/bin/env python3
"""Checks the Grafana dashboard (dashboard.json) offline: its structure (a Grafana
dashboard of schema version 39: panels on a 24-column grid without overlaps, each query
with a unique refId and the Prometheus datasource variable), and every expression, which
`promtool check rules` parses (each written as a recording rule, with Grafana's
variables replaced). The alerting rules are checked by promtool itself (infra/check).
Which metrics the expressions name is checked against what the services really expose
by crates/ops/tests/audit.rs.

usage: infra/observability/check.py [PROMTOOL]"""

import json
import pathlib
import subprocess
import sys
import tempfile

HERE = pathlib.Path(__file__).resolve().parent


def structure_errors(dashboard):
    errors = []
    for key, kind in [("title", str), ("uid", str), ("schemaVersion", int), ("panels", list), ("templating", dict)]:
        if not isinstance(dashboard.get(key), kind):
            errors.append(f"dashboard.{key} must be a {kind.__name__}")
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        errors.append("no `datasource` variable: the dashboard would be bound to one Prometheus")
    cells = {}
    for panel in dashboard.get("panels", []):
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24:
            errors.append(f"{name}: gridPos must be whole numbers inside 24 columns, is {grid}")
            continue
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                if (x, y) in cells:
                    errors.append(f"{name} overlaps {cells[(x, y)]}")
                    break
                cells[(x, y)] = name
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            errors.append(f"{name}: datasource must be the ${{datasource}} variable")
        targets = panel.get("targets", [])
        if not targets:
            errors.append(f"{name}: no query")
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids):
            errors.append(f"{name}: refIds repeat: {ref_ids}")
        for target in targets:
            if not target.get("expr"):
                errors.append(f"{name}: a query without expr")
    return errors


def expressions(dashboard):
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m").replace("$service", ".*")
            yield f"{panel['title']} / {target['refId']}", expr


def promtool_errors(dashboard, promtool):
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:expr_{n}", "expr": expr} for n, (_, expr) in enumerate(expressions(dashboard))
    ]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        json.dump(rules, f)  # JSON is YAML
        path = f.name
    out = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, check=False)
    pathlib.Path(path).unlink()
    return [] if out.returncode == 0 else [f"promtool refuses a dashboard expression:\n{out.stdout}{out.stderr}"]


def main(argv):
    promtool = argv[0] if argv else "promtool"
    dashboard = json.loads((HERE / "dashboard.json").read_text())
    errors = structure_errors(dashboard)
    if not errors:
        errors = promtool_errors(dashboard, promtool)
    for error in errors:
        print(f"dashboard.json: {error}", file=sys.stderr)
    if not errors:
        print(f"dashboard.json: {len(list(expressions(dashboard)))} expressions in {len(dashboard['panels'])} panels, all valid")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
