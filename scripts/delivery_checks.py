#!/usr/bin/env python3
"""Checks of the delivery files that no off-the-shelf tool makes.

scripts/validate-delivery.sh runs the real validators (actionlint, docker
compose config, promtool) and then these, which check what those tools
cannot know: that the compose stack keeps the project's contracts, that the
Grafana dashboard has the panels the issue asks for and every query parses,
that dashboards and alerts only name metrics the code emits, that the
Dockerfile builds what compose runs, and that deny.toml's license allow-list
covers the resolved dependency graph.

    delivery_checks.py compose CONFIG_JSON      # output of `docker compose config --format json`
    delivery_checks.py dashboard --promtool PROMTOOL
    delivery_checks.py metrics --exporters SCRAPE  # SCRAPE: postgres_exporter + redis_exporter /metrics
    delivery_checks.py dockerfile
    delivery_checks.py licenses

Paths are relative to the repository root (or --root). Each command prints
one line per finding and exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

try:
    import yaml
except ImportError:  # pragma: no cover - reported once, clearly
    sys.exit("delivery_checks.py needs PyYAML (pip install pyyaml)")

DASHBOARD = "deploy/grafana/dashboards/switchboard.json"
DATASOURCES = "deploy/grafana/provisioning/datasources"
DASHBOARD_PROVIDERS = "deploy/grafana/provisioning/dashboards"
PROMETHEUS_CONFIG = "deploy/prometheus/prometheus.yml"
ALERT_RULES = "deploy/prometheus/alerts.yml"
EXPORTER_QUERIES = "deploy/prometheus/postgres-exporter-queries.yaml"

# Series Prometheus makes itself, not the services.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}

# The panels the issue asks for: request rate, errors and latency per route;
# socket connections and event rates; queue depth, wait and failures; DB pool.
# Each: a title pattern, metrics one panel must query, a label it must split by.
REQUIRED_PANELS = [
    ("request rate per route", r"request rate", ["http_requests_total"], "route"),
    ("errors per route", r"error", ["http_requests_total"], "route"),
    ("latency per route", r"latency", ["http_request_duration_seconds_bucket"], "route"),
    ("socket connections", r"socket", ["realtime_connected_sockets"], None),
    ("realtime event rates", r"event rate",
     ["realtime_events_in_total", "realtime_events_out_total"], None),
    ("queue depth", r"queue depth", ["jobs_queue_depth"], "queue"),
    ("queue wait", r"wait", ["job_wait_seconds_bucket"], "queue"),
    ("queue failures", r"fail", ["jobs_failed_total"], "queue"),
    ("DB pool", r"pool", ["db_pool_connections"], None),
    # The datastores, from postgres_exporter and redis_exporter.
    ("PostgreSQL connections", r"postgres.*connection", ["pg_stat_activity_count"], "state"),
    ("PostgreSQL lock waits", r"lock", ["pg_lock_waits_sessions"], None),
    ("PostgreSQL slow queries", r"slow", ["pg_slow_queries_running"], None),
    ("Redis memory", r"redis memory", ["redis_memory_used_bytes"], None),
    ("Redis command latency", r"redis command latency",
     ["redis_commands_duration_seconds_total", "redis_commands_total"], "cmd"),
]

# Series from postgres_exporter and redis_exporter, not from our code: checked
# against a live scrape of both exporters (scripts/validate-delivery.sh).
EXPORTER_PREFIXES = ("pg_", "redis_")

# Grafana's macros, replaced by a plausible value before promtool parses a query.
GRAFANA_MACROS = {
    "$__rate_interval": "1m",
    "$__interval": "1m",
    "$__range": "1h",
}


class Findings:
    def __init__(self, name: str) -> None:
        self.name = name
        self.errors: list[str] = []
        self.notes: list[str] = []

    def error(self, message: str) -> None:
        self.errors.append(message)

    def check(self, condition: bool, message: str) -> None:
        if not condition:
            self.error(message)

    def note(self, message: str) -> None:
        self.notes.append(message)

    def finish(self, summary: str) -> int:
        for note in self.notes:
            print(f"  note: {note}")
        for error in self.errors:
            print(f"  error: {error}")
        if self.errors:
            print(f"{self.name}: {len(self.errors)} problem(s)")
            return 1
        print(f"{self.name}: ok ({summary})")
        return 0


# --- PromQL helpers -------------------------------------------------------

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on",
             "ignoring", "group_left", "group_right", "inf", "nan", "atan2"}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions and labels excluded)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"(?<![A-Za-z_:])\d+(\.\d+)?([eE][+-]?\d+)?", " 0 ", s)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", s):
        token = match.group(0)
        rest = s[match.end():].lstrip()
        if rest.startswith("(") or token.lower() in _KEYWORDS:
            continue
        names.add(token)
    return names


def base_metric(name: str) -> str:
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix) and name.endswith("_seconds" + suffix):
            return name[: -len(suffix)]
    return name


def grouping_labels(expr: str) -> set[str]:
    labels = set()
    for match in re.finditer(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels.update(part.strip() for part in match.group(1).split(",") if part.strip())
    return labels


def substitute_macros(expr: str) -> str:
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def promtool_parse(promtool: str, exprs: dict[str, str]) -> list[str]:
    """Parses every expression with promtool (as recording rules); returns errors."""
    if not exprs:
        return []
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:{key}", "expr": expr} for key, expr in exprs.items()
    ]}]}
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(rules, handle, sort_keys=False)
        path = handle.name
    try:
        result = subprocess.run([promtool, "check", "rules", path],
                                capture_output=True, text=True, check=False)
    finally:
        Path(path).unlink(missing_ok=True)
    if result.returncode == 0:
        return []
    return [line.strip() for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and "Checking" not in line]


# --- dashboard ------------------------------------------------------------

def iter_panels(panels: list[dict]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def provisioned_datasource_uids(root: Path) -> set[str]:
    uids = set()
    for path in sorted((root / DATASOURCES).glob("*.y*ml")):
        doc = yaml.safe_load(path.read_text()) or {}
        for source in doc.get("datasources", []):
            if source.get("uid"):
                uids.add(source["uid"])
    return uids


def check_dashboard(root: Path, promtool: str | None, path: str = DASHBOARD) -> int:
    f = Findings(f"dashboard {path}")
    try:
        dash = json.loads((root / path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        f.error(f"cannot read the dashboard JSON: {err}")
        return f.finish("")
    for key in ("uid", "title", "panels", "schemaVersion"):
        f.check(key in dash, f"missing top-level {key!r}")
    panels = list(iter_panels(dash.get("panels", [])))
    uids = provisioned_datasource_uids(root)
    f.check(bool(uids), f"no datasource with a uid is provisioned under {DATASOURCES}")

    ids = [p.get("id") for p in panels]
    f.check(all(isinstance(i, int) for i in ids), "every panel needs an integer id")
    dupes = {i for i in ids if ids.count(i) > 1}
    f.check(not dupes, f"duplicate panel ids {sorted(dupes)}")

    boxes = []
    exprs: dict[str, str] = {}
    for panel in panels:
        title = panel.get("title", "")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in ("h", "w", "x", "y")):
            f.error(f"panel {title!r} has no complete gridPos")
        else:
            f.check(grid["x"] >= 0 and grid["x"] + grid["w"] <= 24,
                    f"panel {title!r} does not fit the 24-column grid")
            boxes.append((title, grid))
        if panel.get("type") == "row":
            continue
        f.check(bool(title), f"panel {panel.get('id')} has no title")
        ds = panel.get("datasource") or {}
        f.check(ds.get("uid") in uids,
                f"panel {title!r} uses datasource {ds.get('uid')!r}, not a provisioned one {sorted(uids)}")
        targets = panel.get("targets", [])
        f.check(bool(targets), f"panel {title!r} has no queries")
        refs = [t.get("refId") for t in targets]
        f.check(len(refs) == len(set(refs)), f"panel {title!r} repeats a refId")
        for target in targets:
            expr = target.get("expr", "").strip()
            if not expr:
                f.error(f"panel {title!r} query {target.get('refId')} is empty")
                continue
            tds = target.get("datasource") or ds
            f.check(tds.get("uid") in uids, f"panel {title!r} query uses an unprovisioned datasource")
            exprs[f"panel_{panel.get('id')}_{target.get('refId')}"] = substitute_macros(expr)

    for i, (title_a, a) in enumerate(boxes):
        for title_b, b in boxes[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                f.error(f"panels {title_a!r} and {title_b!r} overlap")

    for name, pattern, metrics, label in REQUIRED_PANELS:
        found = False
        for panel in panels:
            if panel.get("type") == "row" or not re.search(pattern, panel.get("title", ""), re.I):
                continue
            panel_exprs = [t.get("expr", "") for t in panel.get("targets", [])]
            selected = set().union(*(metric_names(e) for e in panel_exprs)) if panel_exprs else set()
            grouped = set().union(*(grouping_labels(e) for e in panel_exprs)) if panel_exprs else set()
            if all(m in selected for m in metrics) and (label is None or label in grouped):
                found = True
                break
        by = f" split by {label}" if label else ""
        f.check(found, f"no panel for {name}: a title matching /{pattern}/i querying "
                       f"{', '.join(metrics)}{by}")

    if promtool:
        for line in promtool_parse(promtool, exprs):
            f.error(f"promtool: {line}")
    else:
        f.note("queries not parsed (no --promtool given)")
    return f.finish(f"{len(panels)} panels, {len(exprs)} queries parsed by promtool, "
                    f"{len(REQUIRED_PANELS)} required panels present")


# --- metrics named by dashboards and alerts exist in the code ---------------

def emitted_metric_names(root: Path) -> str:
    texts = []
    for base in ("crates", "loadtests"):
        for path in sorted((root / base).rglob("*.rs")):
            if "target" in path.parts:
                continue
            texts.append(path.read_text(errors="replace"))
    return "\n".join(texts)


def referenced_metrics(root: Path, dashboard: str = DASHBOARD,
                       rules: str = ALERT_RULES) -> dict[str, set[str]]:
    where: dict[str, set[str]] = {}
    dash = json.loads((root / dashboard).read_text())
    for panel in iter_panels(dash.get("panels", [])):
        for target in panel.get("targets", []):
            for name in metric_names(target.get("expr", "")):
                where.setdefault(name, set()).add(f"dashboard panel {panel.get('title')!r}")
    doc = yaml.safe_load((root / rules).read_text())
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            for name in metric_names(rule.get("expr", "")):
                where.setdefault(name, set()).add(f"alert {rule.get('alert') or rule.get('record')}")
    return where


def scraped_metric_names(scrape: Path) -> set[str]:
    """Series names in a Prometheus text exposition."""
    names = set()
    for line in scrape.read_text(errors="replace").splitlines():
        if line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def check_metrics(root: Path, dashboard: str = DASHBOARD, rules: str = ALERT_RULES,
                  exporters: Path | None = None) -> int:
    f = Findings("metric names")
    code = emitted_metric_names(root)
    where = referenced_metrics(root, dashboard, rules)
    exported = scraped_metric_names(exporters) if exporters else None
    if exported is not None:
        f.check(any(n.startswith("pg_") for n in exported) and any(n.startswith("redis_") for n in exported),
                f"{exporters} holds no pg_* or no redis_* series: is it a scrape of both exporters?")
    for name in sorted(where):
        if name in PROMETHEUS_OWN:
            continue
        base = base_metric(name)
        if f'"{base}"' in code:
            continue
        if name.startswith(EXPORTER_PREFIXES):
            if exported is None:
                f.error(f"{name} ({'; '.join(sorted(where[name]))}) comes from an exporter: "
                        "pass --exporters with a scrape of postgres_exporter and redis_exporter")
            elif name not in exported:
                f.error(f"{name} ({'; '.join(sorted(where[name]))}) is neither emitted by "
                        "the code nor exported by postgres_exporter or redis_exporter (live scrape)")
            continue
        f.error(f"{name} ({'; '.join(sorted(where[name]))}) is not emitted anywhere "
                f"under crates/ or loadtests/")
    return f.finish(f"{len(where)} names checked against the code")


# --- compose --------------------------------------------------------------

def check_compose(root: Path, config_json: Path) -> int:
    f = Findings("compose contract")
    config = json.loads(config_json.read_text())
    services = config.get("services", {})
    expected = ["postgres", "redis", "migrate", "seed", "api", "realtime", "worker",
                "load", "prometheus", "grafana", "postgres-exporter", "redis-exporter"]
    for name in expected:
        f.check(name in services, f"service {name!r} is missing (render with every profile)")
    if f.errors:
        return f.finish("")

    def dep(service: str, on: str) -> str | None:
        return (services[service].get("depends_on") or {}).get(on, {}).get("condition")

    def volume_types(service: str) -> dict[str, str]:
        return {v.get("target"): v.get("type") for v in services[service].get("volumes", [])}

    f.check(services["postgres"]["image"].startswith("postgres:16"), "postgres must be postgres:16")
    f.check(services["redis"]["image"].startswith("redis:7"), "redis must be redis:7")
    redis_cmd = " ".join(services["redis"].get("command") or [])
    f.check("--appendonly yes" in redis_cmd, "redis must run with --appendonly yes (jobs survive a restart)")
    f.check(volume_types("postgres").get("/var/lib/postgresql/data") == "volume",
            "postgres data must be a named volume")
    f.check(volume_types("redis").get("/data") == "volume", "redis data must be a named volume")

    for name, svc in services.items():
        for port in svc.get("ports", []):
            f.check(port.get("host_ip") == "127.0.0.1",
                    f"{name} publishes port {port.get('target')} on {port.get('host_ip') or 'every interface'}, "
                    "not 127.0.0.1")

    for name in ("postgres", "redis", "api", "realtime", "worker"):
        hc = services[name].get("healthcheck") or {}
        f.check(bool(hc.get("test")) and not hc.get("disable"), f"{name} needs a healthcheck")

    f.check(dep("migrate", "postgres") == "service_healthy", "migrate must wait for a healthy postgres")
    f.check(services["migrate"].get("command") == ["migrate"], "migrate must run `switchboard migrate`")
    f.check(dep("seed", "migrate") == "service_completed_successfully", "seed must run after migrate")

    listen = {"api": ("SWITCHBOARD_API_ADDR", 8080), "realtime": ("SWITCHBOARD_REALTIME_ADDR", 8081),
              "worker": ("SWITCHBOARD_WORKER_ADDR", 8082)}
    for name, (var, port) in listen.items():
        svc = services[name]
        f.check(svc.get("command") == [name], f"{name} must run `switchboard {name}`")
        f.check(dep(name, "postgres") == "service_healthy", f"{name} must wait for a healthy postgres")
        f.check(dep(name, "redis") == "service_healthy", f"{name} must wait for a healthy redis")
        f.check(dep(name, "migrate") == "service_completed_successfully", f"{name} must wait for migrate")
        env = svc.get("environment") or {}
        f.check(env.get(var) == f"0.0.0.0:{port}", f"{name} must listen on 0.0.0.0:{port} ({var})")
        hc = " ".join(svc.get("healthcheck", {}).get("test") or [])
        f.check(f":{port}/ready" in hc, f"{name}'s healthcheck must probe :{port}/ready")

    env_of = {n: services[n].get("environment") or {} for n in ("api", "realtime", "worker", "load")}
    for var in ("DATABASE_URL", "REDIS_URL", "SWITCHBOARD_JWT_SECRET", "SWITCHBOARD_PUBLIC_URL",
                "SWITCHBOARD_REDIS_PREFIX"):
        values = {n: e.get(var) for n, e in env_of.items()}
        f.check(len(set(values.values())) == 1, f"{var} differs between services: {values}")

    load = services["load"]
    f.check(load.get("profiles") == ["load"], "load must be in profile `load` only")
    argv = (load.get("entrypoint") or []) + (load.get("command") or [])
    f.check(argv[:1] == ["switchboard-load"], "load must run switchboard-load")

    def flag(name: str) -> str | None:
        return argv[argv.index(name) + 1] if name in argv[:-1] else None

    f.check(flag("--host") == "http://api:8080", "load must target --host http://api:8080")
    f.check(flag("--realtime") == "http://realtime:8081", "load must target --realtime http://realtime:8081")
    f.check(flag("--worker") == "http://worker:8082", "load must target --worker http://worker:8082")
    f.check(flag("--host") == env_of["api"].get("SWITCHBOARD_PUBLIC_URL"),
            "the API's SWITCHBOARD_PUBLIC_URL must be the URL the load suite signs carrier webhooks for")
    f.check(dep("load", "seed") == "service_completed_successfully", "load must wait for the seed")
    for name in ("api", "realtime", "worker"):
        f.check(dep("load", name) == "service_healthy", f"load must wait for a healthy {name}")

    for name in ("prometheus", "grafana", "postgres-exporter", "redis-exporter"):
        f.check(services[name].get("profiles") == ["monitoring"], f"{name} must be in profile `monitoring` only")
    for name in ("postgres", "redis", "migrate", "seed", "api", "realtime", "worker"):
        f.check(not services[name].get("profiles"), f"{name} must start without a profile")

    # Prometheus scrapes each service at the port it listens on, by service name.
    prom = yaml.safe_load((root / PROMETHEUS_CONFIG).read_text())
    targets = {t for job in prom.get("scrape_configs", []) for sc in job.get("static_configs", [])
               for t in sc.get("targets", [])}
    for name, (_, port) in listen.items():
        f.check(f"{name}:{port}" in targets, f"{PROMETHEUS_CONFIG} does not scrape {name}:{port}")
    # The exporters: scraped at their default ports, pointed at the stack's
    # own PostgreSQL database and Redis, reading the custom queries file.
    for name, port in (("postgres-exporter", 9187), ("redis-exporter", 9121)):
        f.check(f"{name}:{port}" in targets, f"{PROMETHEUS_CONFIG} does not scrape {name}:{port}")
    pg_exporter = services["postgres-exporter"]
    dsn = (pg_exporter.get("environment") or {}).get("DATA_SOURCE_NAME", "")
    f.check(dsn.split("?")[0].endswith("@postgres:5432/switchboard"),
            f"postgres-exporter must read the stack's database (DATA_SOURCE_NAME {dsn!r})")
    f.check(dep("postgres-exporter", "postgres") == "service_healthy",
            "postgres-exporter must wait for a healthy postgres")
    queries = [a.split("=", 1)[1] for a in pg_exporter.get("command") or []
               if a.startswith("--extend.query-path=")]
    mounts = {v.get("target"): v.get("source", "") for v in pg_exporter.get("volumes", [])}
    f.check(bool(queries) and mounts.get(queries[0], "").endswith(EXPORTER_QUERIES),
            f"postgres-exporter must load {EXPORTER_QUERIES} with --extend.query-path")
    redis_addr = (services["redis-exporter"].get("environment") or {}).get("REDIS_ADDR")
    f.check(redis_addr == "redis://redis:6379",
            f"redis-exporter must read the stack's Redis (REDIS_ADDR {redis_addr!r})")
    prom_mounts = {v.get("target"): v.get("source", "") for v in services["prometheus"].get("volumes", [])}
    f.check(any(src.endswith("deploy/prometheus") for src in prom_mounts.values()),
            "prometheus must mount deploy/prometheus")
    f.check(any("--config.file=/etc/prometheus/prometheus.yml" == a
                for a in services["prometheus"].get("command") or []),
            "prometheus must load /etc/prometheus/prometheus.yml")

    # Grafana's provisioning and the dashboard directory its provider reads.
    graf_mounts = {v.get("target"): v.get("source", "") for v in services["grafana"].get("volumes", [])}
    f.check(graf_mounts.get("/etc/grafana/provisioning", "").endswith("deploy/grafana/provisioning"),
            "grafana must mount deploy/grafana/provisioning at /etc/grafana/provisioning")
    for path in sorted((root / DASHBOARD_PROVIDERS).glob("*.y*ml")):
        for provider in (yaml.safe_load(path.read_text()) or {}).get("providers", []):
            wanted = (provider.get("options") or {}).get("path")
            f.check(graf_mounts.get(wanted, "").endswith("deploy/grafana/dashboards"),
                    f"grafana provider {provider.get('name')!r} reads {wanted}, where deploy/grafana/dashboards "
                    "is not mounted")
    return f.finish(f"{len(services)} services")


# --- Dockerfile -----------------------------------------------------------

def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def dockerignore_excludes(patterns: list[str], path: str) -> bool:
    excluded = False
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        pattern = pattern.rstrip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        if any(fnmatch.fnmatch(path, c) or path.startswith(c + "/") for c in candidates):
            excluded = not negate
    return excluded


def check_dockerfile(root: Path) -> int:
    f = Findings("Dockerfile")
    instructions = dockerfile_instructions((root / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = []
    for word, rest in instructions:
        if word == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word, rest))
    f.check(len(stages) >= 2, "the build must be multi-stage")
    froms = [s[0][1] for s in stages]
    f.check(froms and froms[0].startswith("rust:"), "the first stage must build from the rust image")
    args = dict(rest.split("=", 1) for word, rest in instructions if word == "ARG" and "=" in rest)
    f.check(args.get("RUST_VERSION") == "1.95", "RUST_VERSION must default to 1.95")
    runtime = stages[-1] if stages else []
    f.check(bool(runtime) and re.match(r"debian:\S*-slim", runtime[0][1].replace("${DEBIAN_RELEASE}", "bookworm"))
            is not None, "the runtime stage must be debian:*-slim")
    users = [rest for word, rest in runtime if word == "USER"]
    f.check(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "the runtime must run as a non-root USER")
    runs = " ".join(rest for word, rest in instructions if word == "RUN")
    f.check("cargo chef cook" in runs, "dependencies must be cooked in their own layer (cargo chef cook)")
    build = [rest for word, rest in instructions if word == "RUN" and "cargo build" in rest]
    f.check(bool(build) and "--release" in build[0] and "--locked" in build[0],
            "the build must be `cargo build --release --locked`")
    f.check(bool(build) and "-p switchboard " in build[0] + " " and "-p switchboard-load" in build[0],
            "the image must hold switchboard and switchboard-load")
    f.check(bool(build) and re.search(r"\binstall\s+(-\S*\s+)*-s\b|\bstrip\b|profile\.release\.strip", build[0])
            is not None, "the image must ship stripped binaries (install -s, strip, or profile.release.strip)")
    runtime_runs = " ".join(rest for word, rest in runtime if word == "RUN")
    f.check("ca-certificates" in runtime_runs, "the runtime needs ca-certificates")
    f.check(" curl" in runtime_runs, "the runtime needs curl (compose healthchecks use it)")
    entry = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    f.check(bool(entry) and '"switchboard"' in entry[-1], 'ENTRYPOINT must be ["switchboard"]')

    ignore = [line.strip() for line in (root / ".dockerignore").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    for needed in ("Cargo.toml", "Cargo.lock", "crates/core/src/lib.rs", "migrations", "loadtests/Cargo.toml"):
        f.check(not dockerignore_excludes(ignore, needed), f".dockerignore excludes {needed}, which the build needs")
    for unwanted in ("target", ".git"):
        f.check(dockerignore_excludes(ignore, unwanted), f".dockerignore must exclude {unwanted}/")

    # Compile-time checked queries would need `.sqlx/` offline data to build
    # without a database; today every query is a runtime one.
    macro = re.compile(r"\bsqlx::query(_as|_scalar)?(_unchecked)?!\s*\(|\bquery(_as|_scalar)?!\s*\(")
    users_of_macros = [str(p.relative_to(root)) for base in ("crates", "loadtests")
                       for p in sorted((root / base).rglob("*.rs"))
                       if "target" not in p.parts and macro.search(p.read_text(errors="replace"))]
    if users_of_macros:
        f.check((root / ".sqlx").is_dir(),
                "compile-time checked sqlx queries in " + ", ".join(users_of_macros[:5]) +
                " need committed `.sqlx/` data (cargo sqlx prepare --workspace) for the image to build")
    else:
        f.note("no compile-time checked sqlx queries: no .sqlx/ offline data needed")
    return f.finish(f"{len(stages)} stages")


# --- licenses -------------------------------------------------------------

def spdx_allowed(expression: str, allowed: set[str]) -> bool:
    """Evaluates an SPDX expression (AND, OR, WITH, parentheses; '/' as OR)."""
    tokens = re.findall(r"\(|\)|[^\s()]+", expression.replace("/", " OR "))
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def primary() -> bool:
        if peek() == "(":
            take()
            value = disjunction()
            if take() != ")":
                raise ValueError(f"unbalanced parentheses in {expression!r}")
            return value
        ident = take()
        if peek() == "WITH":
            take()
            ident = f"{ident} WITH {take()}"
        return ident in allowed

    def chain(operator: str, operand, combine) -> bool:
        """Operands joined by `operator`, left to right: each operand is
        parsed (and its tokens taken) before it is combined."""
        value = operand()
        while peek() == operator:
            take()
            value = combine(operand(), value)
        return value

    def conjunction() -> bool:
        return chain("AND", primary, lambda a, b: a and b)

    def disjunction() -> bool:
        return chain("OR", conjunction, lambda a, b: a or b)

    result = disjunction()
    if pos != len(tokens):
        raise ValueError(f"cannot parse license expression {expression!r}")
    return result


def check_licenses(root: Path, deny_path: str = "deny.toml") -> int:
    f = Findings(f"licenses ({deny_path})")
    deny = tomllib.loads((root / deny_path).read_text())
    licenses = deny.get("licenses", {})
    allowed = set(licenses.get("allow", []))
    exceptions = {e.get("crate") or e.get("name"): set(e.get("allow", []))
                  for e in licenses.get("exceptions", [])}
    targets = deny.get("graph", {}).get("targets") or ["x86_64-unknown-linux-gnu"]
    targets = [t if isinstance(t, str) else t.get("triple") for t in targets]
    packages: dict[str, dict] = {}
    for target in targets:
        result = subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
            cwd=root, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            f.error(f"cargo metadata failed for {target}: {result.stderr.strip()[-500:]}")
            return f.finish("")
        meta = json.loads(result.stdout)
        in_graph = {node["id"] for node in meta["resolve"]["nodes"]}
        for package in meta["packages"]:
            if package["id"] in in_graph and package.get("source"):
                packages[package["id"]] = package
    used: set[str] = set()
    for package in sorted(packages.values(), key=lambda p: (p["name"], p["version"])):
        expression = package.get("license")
        label = f"{package['name']} {package['version']}"
        if not expression:
            f.error(f"{label} declares no SPDX license (license-file only): add a [[licenses.clarify]]")
            continue
        permitted = allowed | exceptions.get(package["name"], set())
        try:
            ok = spdx_allowed(expression, permitted)
        except ValueError as err:
            f.error(f"{label}: {err}")
            continue
        if ok:
            used.update(tok for tok in re.findall(r"[A-Za-z0-9.+-]+", expression) if tok in permitted)
        else:
            f.error(f"{label} is licensed {expression!r}, which deny.toml does not allow")
    unused = sorted(allowed - used)
    if unused:
        f.note("allowed but not needed by the current graph: " + ", ".join(unused))
    return f.finish(f"{len(packages)} registry crates on {', '.join(targets)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    sub = parser.add_subparsers(dest="command", required=True)
    compose = sub.add_parser("compose")
    compose.add_argument("config_json", type=Path)
    dashboard = sub.add_parser("dashboard")
    dashboard.add_argument("--promtool")
    dashboard.add_argument("--file", default=DASHBOARD)
    metrics = sub.add_parser("metrics")
    metrics.add_argument("--dashboard", default=DASHBOARD)
    metrics.add_argument("--rules", default=ALERT_RULES)
    metrics.add_argument("--exporters", type=Path,
                         help="a scrape of postgres_exporter and redis_exporter (text exposition)")
    sub.add_parser("dockerfile")
    licenses = sub.add_parser("licenses")
    licenses.add_argument("--deny", default="deny.toml")
    args = parser.parse_args()
    root = args.root.resolve()
    if args.command == "compose":
        return check_compose(root, args.config_json)
    if args.command == "dashboard":
        return check_dashboard(root, args.promtool, args.file)
    if args.command == "metrics":
        return check_metrics(root, args.dashboard, args.rules, args.exporters)
    if args.command == "dockerfile":
        return check_dockerfile(root)
    return check_licenses(root, args.deny)


if __name__ == "__main__":
    sys.exit(main())
