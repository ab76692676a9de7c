#!/usr/bin/python3
"""Offline checks of deploy/ (called by scripts/check-ops; Debian python3 with python3-yaml).

  check-ops.py alerts-tested RULES TESTS       every alert has a promtool case in which it fires
  check-ops.py dashboard DASHBOARD             the Grafana JSON is well formed: ids, grid, data source, queries
  check-ops.py metrics SCRAPE RULES DASHBOARD  every metric the rules and the dashboard use is in SCRAPE (a real
                                               /metrics answer), or one of EXTERNAL (not Speedflow's)
"""
import json
import re
import sys

import yaml

# Metrics the rules may use that no Speedflow process exports, with who does.
EXTERNAL = {
    "up": "Prometheus (scrape health)",
    "node_systemd_unit_state": "node_exporter --collector.systemd",
}

# PromQL words that look like metric names but are not.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
            "offset", "inf", "nan"}


def fail(message):
    print("check-ops: " + message, file=sys.stderr)
    sys.exit(1)


def metric_names(expr):
    """The metric names a PromQL expression selects (functions, aggregations, labels and keywords left out)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)  # strings
    e = re.sub(r"\{[^}]*\}", " ", e)  # label matchers
    e = re.sub(r"\[[^\]]*\]", " ", e)  # ranges and subqueries
    e = re.sub(r"\b(offset\s+-?|@\s*)[0-9a-z.]+", " ", e)  # offset 5m, @ 1700000000
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"(?<![A-Za-z_:])\d+(\.\d+)?([eE][+-]?\d+)?", " ", e)  # numbers, 1e9 included
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", e):
        if e[m.end():].lstrip().startswith("("):
            continue  # a function or an aggregation
        if m.group(0).lower() in KEYWORDS:
            continue
        names.add(m.group(0))
    return names


def rule_exprs(path):
    doc = yaml.safe_load(open(path))
    return {r.get("alert") or r.get("record"): r["expr"] for g in doc["groups"] for r in g["rules"]}


def dashboard_exprs(path):
    """(where, expr) of every panel query and every query variable of the dashboard."""
    d = json.load(open(path))
    out = []
    for p in panels(d):
        for t in p.get("targets", []):
            out.append(("panel %r" % p.get("title"), t.get("expr", "")))
    for v in d.get("templating", {}).get("list", []):
        if v.get("type") == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            m = re.fullmatch(r"\s*label_values\((.*),\s*[A-Za-z_]+\s*\)\s*", q)
            out.append(("variable %r" % v["name"], m.group(1) if m else q))
    return out


def panels(d):
    for p in d.get("panels", []):
        yield p
        yield from p.get("panels", [])  # a collapsed row's


def alerts_tested(rules_path, tests_path):
    alerts = {name for name in rule_exprs(rules_path)}
    tests = yaml.safe_load(open(tests_path))
    fired = {c["alertname"] for t in tests["tests"] for c in t.get("alert_rule_test", []) if c.get("exp_alerts")}
    missing = sorted(alerts - fired)
    if missing:
        fail("alerts without a promtool case that fires them: " + ", ".join(missing))
    unknown = sorted(fired - alerts)
    if unknown:
        fail("promtool cases for alerts that do not exist: " + ", ".join(unknown))
    for name, rule in ((r["alert"], r) for g in yaml.safe_load(open(rules_path))["groups"] for r in g["rules"] if "alert" in r):
        if rule.get("labels", {}).get("severity") not in ("critical", "warning", "info"):
            fail("alert %s: severity must be critical, warning or info" % name)
        if not rule.get("annotations", {}).get("summary") or not rule.get("annotations", {}).get("description"):
            fail("alert %s: needs a summary and a description" % name)
    print("check-ops: %d alerts, each fired by a promtool case" % len(alerts))


def dashboard(path):
    try:
        d = json.load(open(path))
    except ValueError as e:
        fail("%s is not JSON: %s" % (path, e))
    for key in ("title", "uid", "panels", "templating", "schemaVersion"):
        if key not in d:
            fail("%s: no %r" % (path, key))
    names = {v["name"] for v in d["templating"]["list"]}
    if "datasource" not in names:
        fail("%s: no datasource variable (the dashboard must not name a data source of one installation)" % path)
    ids = set()
    queries = 0
    for p in panels(d):
        title = p.get("title", "?")
        if not isinstance(p.get("id"), int) or p["id"] in ids:
            fail("panel %r: missing or duplicate id" % title)
        ids.add(p["id"])
        g = p.get("gridPos", {})
        if not all(isinstance(g.get(k), int) for k in "hwxy") or g["x"] + g["w"] > 24:
            fail("panel %r: gridPos must have integer h, w, x, y within 24 columns" % title)
        if p.get("type") == "row":
            continue
        if p.get("datasource", {}).get("uid") != "${datasource}":
            fail("panel %r: datasource must be ${datasource}" % title)
        targets = p.get("targets", [])
        if not targets or not all(t.get("expr", "").strip() for t in targets):
            fail("panel %r: every panel needs at least one query, none empty" % title)
        for t in targets:
            if t.get("expr", "").count("(") != t.get("expr", "").count(")"):
                fail("panel %r: unbalanced parentheses in %s" % (title, t["expr"]))
            if not metric_names(t["expr"]):
                fail("panel %r: %s selects no metric" % (title, t["expr"]))
            queries += 1
    print("check-ops: dashboard %s: %d panels, %d queries" % (path, len(ids), queries))


def scraped_names(path):
    names = set()
    for line in open(path):
        if line.startswith("#") or not line.strip():
            continue
        names.add(re.match(r"[A-Za-z_:][A-Za-z0-9_:]*", line).group(0))
    return names


def metrics(scrape_path, rules_path, dashboard_path):
    scraped = scraped_names(scrape_path)
    if not scraped:
        fail("%s holds no samples" % scrape_path)
    used = [("alert %s" % name, expr) for name, expr in rule_exprs(rules_path).items()] + dashboard_exprs(dashboard_path)
    problems = []
    seen = set()
    for where, expr in used:
        for name in sorted(metric_names(expr)):
            seen.add(name)
            if name not in scraped and name not in EXTERNAL:
                problems.append("%s uses %s, which the scrape does not list" % (where, name))
    if problems:
        fail("\n  ".join(["metrics missing from a real /metrics scrape (%s):" % scrape_path] + problems))
    own = sorted(n for n in seen if n not in EXTERNAL)
    print("check-ops: all %d metrics the rules and the dashboard use are in the scrape (+ %s from elsewhere)"
          % (len(own), ", ".join(sorted(n for n in seen if n in EXTERNAL))))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"alerts-tested": alerts_tested, "dashboard": dashboard, "metrics": metrics}[command](*args)
