#!/usr/bin/python3
"""Offline checks of deploy/ (called by scripts/check-ops; Debian python3 with python3-yaml).

  check-ops.py alerts-tested RULES TESTS       every alert has a promtool case in which it fires
  check-ops.py dashboard DASHBOARD             the Grafana JSON is well formed: ids, grid, data source, queries
  check-ops.py metrics SCRAPE RULES DASHBOARD  every metric the rules and the dashboard use is in SCRAPE (a real
                                               /metrics answer), or one of EXTERNAL (not Speedflow's)
  check-ops.py units DIR                       the systemd units in DIR agree: the roles' template has serve's
                                               [Service] settings, every instance has its env file
  check-ops.py settings BIN DIR...             every flag and SPEEDFLOW_* variable the Kubernetes manifests and
                                               the env files in DIR... pass exists in `BIN <role> --help`;
                                               probes, ports, resources and mounted paths of the manifests agree
"""
import glob
import json
import os
import re
import subprocess
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


def unit_service_settings(path):
    """The [Service] key=value lines of a unit, comments left out."""
    section, out = None, []
    for line in open(path):
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and line and not line.startswith("#"):
            out.append(line)
    return out


def units(directory):
    serve = unit_service_settings(os.path.join(directory, "speedflow.service"))
    template = unit_service_settings(os.path.join(directory, "speedflow@.service"))
    if "ExecStart=/usr/bin/speedflow serve" not in serve or "ExecStart=/usr/bin/speedflow %i" not in template:
        fail("speedflow.service must run `speedflow serve`, speedflow@.service `speedflow %i`")
    own = ("ExecStart=", "EnvironmentFile=")
    a = [l for l in serve if not l.startswith(own)]
    b = [l for l in template if not l.startswith(own)]
    if a != b:
        fail("speedflow@.service's [Service] settings differ from speedflow.service's:\n  only serve: %s\n  only roles: %s"
             % (sorted(set(a) - set(b)), sorted(set(b) - set(a))))
    for key in ("Type=notify", "NoNewPrivileges=yes", "ProtectSystem=strict", "ReadWritePaths=/var/lib/speedflow",
                "PrivateTmp=yes", "ProtectHome=yes", "CapabilityBoundingSet=", "Restart=on-failure", "User=speedflow"):
        if key not in a:
            fail("the units must set %s" % key)
    if not any(l.startswith("WatchdogSec=") for l in a) or not any(l.startswith("LimitNOFILE=") for l in a):
        fail("the units must set WatchdogSec= and LimitNOFILE=")
    for role in ("ingest", "aggregate", "api"):
        if not os.path.exists(os.path.join(directory, role + ".env")):
            fail("speedflow@%s.service has no %s.env" % (role, role))
    print("check-ops: units: speedflow.service and speedflow@.service share %d [Service] settings" % len(a))


class Help:
    """What `BIN <role> --help` offers: its options, and the SPEEDFLOW_* variables it names."""

    def __init__(self, binary, role):
        text = subprocess.run([binary, role, "--help"], check=True, capture_output=True, text=True).stdout
        self.role = role
        self.options = set(re.findall(r"^\s+(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)", text, re.M))
        self.named = set(re.findall(r"SPEEDFLOW_[A-Z0-9_]+", text))
        if "data-dir" not in self.options:
            fail("`%s %s --help` lists no --data-dir: not the help of a role" % (binary, role))

    def has_env(self, name):
        # `speedflow --help`: every option can be set by SPEEDFLOW_<OPTION>; some help texts name theirs.
        return name in self.named or name[len("SPEEDFLOW_"):].lower().replace("_", "-") in self.options


def settings(binary, *directories):
    helps = {}

    def help_of(role):
        if role not in helps:
            helps[role] = Help(binary, role)
        return helps[role]

    problems = []
    checked = 0
    for directory in directories:
        for path in sorted(glob.glob(os.path.join(directory, "*.env"))):
            name = os.path.basename(path)[:-len(".env")]
            h = help_of("serve" if name == "speedflow" else name)
            for line in open(path):
                m = re.match(r"\s*#?\s*(SPEEDFLOW_[A-Z0-9_]+)=", line)
                if m:
                    checked += 1
                    if not h.has_env(m.group(1)):
                        problems.append("%s: %s is no option of `speedflow %s`" % (path, m.group(1), h.role))
        docs = [(path, doc) for path in sorted(glob.glob(os.path.join(directory, "*.yaml")))
                for doc in yaml.safe_load_all(open(path)) if doc]
        for path, doc in docs:
            if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
                checked += k8s_workload(path, doc, help_of, problems)
        checked += k8s_wiring(directory, docs, problems)
    if problems:
        fail("\n  ".join(["the settings, the manifests and the binary disagree:"] + problems))
    print("check-ops: %d settings (flags, SPEEDFLOW_* variables, probes, ports, mounts) agree with %s" % (checked, ", ".join(
        "`speedflow %s --help`" % r for r in sorted(helps))))


def k8s_workload(path, doc, help_of, problems):
    """A workload's containers: the role's flags and variables, port, probes, resources, and where its files are."""
    where = "%s: %s %s" % (path, doc["kind"], doc["metadata"]["name"])
    spec = doc["spec"]["template"]["spec"]
    checked = 0
    for c in spec["containers"]:
        args = c.get("args") or []
        if c.get("command") != ["/usr/bin/speedflow"] or not args:
            problems.append("%s: run /usr/bin/speedflow with the role as the first argument" % where)
            continue
        h = help_of(args[0])
        for a in args[1:]:
            if a.startswith("--"):
                checked += 1
                if a[2:].split("=")[0] not in h.options:
                    problems.append("%s: %s is no option of `speedflow %s`" % (where, a, h.role))
        env = {}
        for e in c.get("env", []):
            checked += 1
            env[e["name"]] = e.get("value")
            if e["name"].startswith("SPEEDFLOW_") and not h.has_env(e["name"]):
                problems.append("%s: %s is no option of `speedflow %s`" % (where, e["name"], h.role))
        ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
        if str(ports.get("http")) != env.get("SPEEDFLOW_PORT"):
            problems.append("%s: containerPort http (%s) is not SPEEDFLOW_PORT (%s)" % (where, ports.get("http"), env.get("SPEEDFLOW_PORT")))
        if env.get("SPEEDFLOW_HOST") != "0.0.0.0":
            problems.append("%s: SPEEDFLOW_HOST must be 0.0.0.0 (the default 127.0.0.1 is unreachable from the probes)" % where)
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            get = c.get(probe, {}).get("httpGet", {})
            checked += 1
            if get.get("path") != "/health" or get.get("port") not in ports:
                problems.append("%s: %s must GET /health on a named container port" % (where, probe))
        res = c.get("resources", {})
        if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory") or not res.get("limits", {}).get("memory"):
            problems.append("%s: needs cpu and memory requests and a memory limit" % where)
        mounts = [m["mountPath"] for m in c.get("volumeMounts", [])]
        for name, value in env.items():
            if name == "SPEEDFLOW_DATA_DIR" or name.endswith("_FILE") or name in ("SPEEDFLOW_CREDENTIALS", "SPEEDFLOW_REGISTRY"):
                checked += 1
                if not any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts):
                    problems.append("%s: %s=%s is on no mounted volume (the root file system is read-only)" % (where, name, value))
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append("%s: mount %s names no volume" % (where, m["name"]))
    return checked

def k8s_wiring(directory, docs, problems):
    """Services reach pods (selector, named target port), workloads select their own pods, the kustomization lists
    every file and names the image the containers use."""
    checked = 0
    workloads = [(p, d) for p, d in docs if d.get("kind") in ("Deployment", "StatefulSet", "DaemonSet")]
    for path, d in workloads:
        labels = d["spec"]["template"]["metadata"].get("labels", {})
        if any(labels.get(k) != v for k, v in d["spec"]["selector"]["matchLabels"].items()):
            problems.append("%s: %s's selector does not match its pod labels" % (path, d["metadata"]["name"]))
    for path, svc in ((p, d) for p, d in docs if d.get("kind") == "Service"):
        checked += 1
        selector = svc["spec"].get("selector", {})
        pods = [d["spec"]["template"] for _, d in workloads
                if all(d["spec"]["template"]["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        if not pods:
            problems.append("%s: Service %s selects no pods" % (path, svc["metadata"]["name"]))
        names = {port.get("name") for pod in pods for c in pod["spec"]["containers"] for port in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            if port.get("targetPort") not in names:
                problems.append("%s: Service %s targets port %r, which its pods do not name" % (path, svc["metadata"]["name"], port.get("targetPort")))
    kustomization = os.path.join(directory, "kustomization.yaml")
    if os.path.exists(kustomization):
        k = yaml.safe_load(open(kustomization))
        files = {os.path.basename(p) for p, _ in docs} - {"kustomization.yaml"}
        if set(k.get("resources", [])) != files:
            problems.append("%s: resources %s, files %s" % (kustomization, sorted(k.get("resources", [])), sorted(files)))
        images = {i["name"] for i in k.get("images", [])}
        for path, d in workloads:
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["image"] not in images:
                    problems.append("%s: image %s is not set by the kustomization" % (path, c["image"]))
    return checked


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"alerts-tested": alerts_tested, "dashboard": dashboard, "metrics": metrics, "units": units, "settings": settings}[command](*args)
