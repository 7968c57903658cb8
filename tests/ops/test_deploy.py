"""Every deployment file parses, references only real `parcelwatch` commands and options, and
only metrics `parcelwatch.ops.metrics` defines."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from fastapi.testclient import TestClient
from prometheus_client import Counter, Gauge, Histogram

from parcelwatch.api.app import create_app
from parcelwatch.cli.main import app as cli_app
from parcelwatch.config import load_settings
from parcelwatch.ops import metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
METRICS_SOURCE = Path(__file__).resolve().parents[2] / "src/parcelwatch/ops/metrics.py"
COMMAND = re.compile(r"(?:^|[\s/;&|(\"'])parcelwatch((?:[ \t]+[^\s;&|>)\"']+)+)")
METRIC = re.compile(r"\bparcelwatch_[a-z0-9_]+")
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*$")
SUFFIXES = ("", "_total", "_created", "_bucket", "_count", "_sum", "_info")


# -- helpers -------------------------------------------------------------------------------


def parcelwatch_commands(text: str) -> list[list[str]]:
    """Every `parcelwatch <args>` in a shell line or joined argv."""
    return [shlex.split(match.group(1)) for match in COMMAND.finditer(text)]


def assert_real_command(argv: list[str]) -> None:
    """Resolve `argv` through the real Typer app: the leading words name a command (groups
    descended until a leaf), every option is one that command knows, and the words after
    the leaf are its arguments and option values."""
    command: Any = typer.main.get_command(cli_app)  # typer vendors click: duck-type groups
    words = [arg for arg in argv if not arg.startswith("-")]
    options = [arg.split("=", 1)[0] for arg in argv if arg.startswith("-")]
    for word in words:
        if not hasattr(command, "commands"):
            break  # a leaf: the rest are its arguments and option values
        sub = command.commands.get(word)
        assert sub is not None, f"`parcelwatch {' '.join(argv)}`: no command {word!r}"
        command = sub
    assert not hasattr(command, "commands"), f"`parcelwatch {' '.join(argv)}` is a group"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for option in options:
        assert option in known, f"`parcelwatch {' '.join(argv)}`: unknown option {option}"


def defined_metrics() -> set[str]:
    base = set(re.findall(r'"(parcelwatch_[a-z0-9_]+)"', METRICS_SOURCE.read_text()))
    return {name + suffix for name in base for suffix in SUFFIXES}


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, rest = stripped.partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
    return instructions


def systemd_unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def crontab_entries() -> list[tuple[list[str], str]]:
    entries = []
    for line in (DEPLOY / "cron" / "parcelwatch.crontab").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or re.match(r"^[A-Z_]+=", line):
            continue
        fields = line.split(None, 5)
        entries.append((fields[:5], fields[5]))
    return entries


def served(path: str) -> int:
    """The status the real app answers for `path` (on an empty SQLite file in the test's
    working directory; no lifespan, so no updater)."""
    settings = load_settings(database_url="sqlite:///./deploy-check.db", _env_file=None)
    app = create_app(settings)
    try:
        return TestClient(app).get(path).status_code
    finally:
        app.state.database.dispose()  # no lifespan ran to dispose it


def yaml_documents(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def all_commands() -> dict[str, list[list[str]]]:
    """Every parcelwatch invocation, by the file that holds it."""
    found: dict[str, list[list[str]]] = {}
    instructions = dict(dockerfile_instructions())
    docker = " ".join(json.loads(instructions["ENTRYPOINT"]) + json.loads(instructions["CMD"]))
    found["Dockerfile"] = parcelwatch_commands(docker)
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        parts = []
        for key in ("entrypoint", "command"):
            value = service.get(key, [])
            parts += value if isinstance(value, list) else [value]
        text = "\n".join(parts)
        if service.get("image", "").startswith("parcelwatch") and "entrypoint" not in service:
            text = "parcelwatch " + " ".join(parts)  # exec form: one argv
        found[f"docker-compose.yml:{name}"] = parcelwatch_commands(text)
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml_documents(path):
            for container in _containers(doc):
                argv = container.get("command") or ["parcelwatch"]
                text = " ".join(argv + container.get("args", []))
                found.setdefault(path.name, []).extend(parcelwatch_commands(text))
    for path in sorted((DEPLOY / "systemd").glob("*.service")):
        exec_start = systemd_unit(path)["Service"]["ExecStart"]
        found[path.name] = parcelwatch_commands(exec_start)
    found["crontab"] = [
        argv for _, line in crontab_entries() for argv in parcelwatch_commands(line)
    ]
    return found


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    pod = spec.get("template", {}).get("spec", {})
    return list(pod.get("containers", []))


# -- commands ------------------------------------------------------------------------------


def test_every_deployment_file_runs_parcelwatch() -> None:
    found = all_commands()
    for source, commands in found.items():
        if source not in {f"docker-compose.yml:{name}" for name in ("postgres", "proxy", "redis")}:
            assert commands, f"{source} runs no parcelwatch command"


@pytest.mark.parametrize(
    ("source", "argv"),
    [(source, argv) for source, commands in all_commands().items() for argv in commands],
)
def test_referenced_commands_exist_in_the_real_cli(source: str, argv: list[str]) -> None:
    assert_real_command(argv)


def test_the_schedules_cover_sync_forced_sync_and_alerts() -> None:
    flat = {source: {" ".join(argv) for argv in cmds} for source, cmds in all_commands().items()}
    assert flat["crontab"] == {"sync", "sync --force", "alert --check-and-alert"}
    assert {"sync --force", "alert --check-and-alert"} <= flat["cronjobs.yaml"]
    assert flat["server.yaml"] == {"serve"}
    assert flat["worker.yaml"] == {"worker --metrics-port 9100"}
    assert flat["docker-compose.yml:worker"] == {"worker --metrics-port 9100"}
    assert flat["parcelwatch-worker@.service"] == {"worker --metrics-port %i"}
    assert flat["docker-compose.yml:alert"] == {"alert --check-and-alert"}


def test_the_command_checker_rejects_what_the_cli_lacks() -> None:
    with pytest.raises(AssertionError, match="no command"):
        assert_real_command(["synchronise"])
    with pytest.raises(AssertionError, match="unknown option"):
        assert_real_command(["sync", "--everything"])


README_COMMAND = re.compile(
    r"(?:^|\bexec \S+ |\brun --rm \S+ \")parcelwatch((?:[ \t]+[^\s;&|>)\"']+)+)"
)


def readme_commands() -> list[list[str]]:
    """`parcelwatch …` run in the README's shell blocks (directly, via exec or run)."""
    commands, in_shell = [], False
    for line in (DEPLOY.parent / "README.md").read_text().splitlines():
        if line.startswith("```"):
            in_shell = line.strip() in ("```sh", "```bash")
            continue
        if in_shell:
            commands += [shlex.split(m.group(1)) for m in README_COMMAND.finditer(line.strip())]
    return commands


def test_the_readme_walkthrough_runs_real_commands() -> None:
    commands = readme_commands()
    assert ["health"] in commands
    assert ["alert", "--test-alert"] in commands
    for argv in commands:
        assert_real_command(argv)


# -- each file's shape ---------------------------------------------------------------------


def test_dockerfile_is_multi_stage_non_root_with_a_liveness_healthcheck() -> None:
    instructions = dockerfile_instructions()
    stages = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(stages) >= 2
    assert any(" AS build" in stage for stage in stages)
    users = [rest for keyword, rest in instructions if keyword == "USER"]
    assert users
    assert users[-1].split(":")[0] not in ("root", "0")
    assert any(k == "COPY" and "--from=build" in rest for k, rest in instructions)
    healthcheck = next(rest for keyword, rest in instructions if keyword == "HEALTHCHECK")
    argv = json.loads(healthcheck[healthcheck.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"]
    compile(argv[2], "<healthcheck>", "exec")
    assert "/healthz" in argv[2]
    assert served("/healthz") == 200


def test_compose_runs_server_worker_and_alert_on_postgres_behind_one_port() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "server", "server-2", "proxy", "worker", "redis", "alert"}
    assert services["postgres"]["image"].startswith("postgres:")
    for name in ("server", "worker", "alert"):
        assert services[name]["environment"]["DATABASE_URL"].startswith("postgresql://")
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "profiles" not in services[name]
    assert services["proxy"]["ports"] == ["127.0.0.1:8080:8080"]
    assert "ports" not in services["server"]
    assert services["server"]["environment"]["AUTO_UPDATE_ENABLED"] == "false"


def test_the_scale_profile_adds_redis_and_a_second_api_server_behind_the_same_port() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    scale = {name for name, service in services.items() if "scale" in service.get("profiles", [])}
    assert scale == {"server-2", "redis"}
    second = services["server-2"]
    assert second["environment"] == services["server"]["environment"]  # updater off too
    assert second["networks"]["default"]["aliases"] == ["server"]  # the proxy's upstream name
    assert second["command"] == ["serve", "--no-migrate"]  # one server migrates
    mounted = services["proxy"]["volumes"][0].split(":")[0]
    nginx = (DEPLOY / mounted).read_text()
    assert "resolver 127.0.0.11" in nginx  # re-resolves `server`: every API server answers
    assert "set $parcelwatch http://server:8080;" in nginx
    assert "proxy_pass $parcelwatch;" in nginx
    assert services["server"]["environment"]["REDIS_URL"] == "${REDIS_URL:-}"
    assert services["redis"]["image"].startswith("redis:")
    worker = services["worker"]
    assert worker["healthcheck"]["test"][-1].endswith(
        "urlopen('http://127.0.0.1:9100/healthz', timeout=4)"
    )
    assert worker["environment"]["HOST"] == "0.0.0.0"


def test_compose_publishes_the_unauthenticated_server_on_loopback_only() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for published in service.get("ports", []):
            address = str(published).split(":")[0]
            assert str(published).count(":") == 2, f"{name} publishes {published} everywhere"
            assert address == "127.0.0.1", f"{name} publishes {published} beyond loopback"


def test_the_documented_docker_run_publishes_on_loopback_and_names_allowed_hosts() -> None:
    readme = (DEPLOY.parent / "README.md").read_text()
    runs = [line for line in readme.splitlines() if line.startswith("docker run ")]
    assert runs
    assert all("-p 127.0.0.1:8080:8080" in line for line in runs)
    docker = readme[readme.index("\n### Docker\n") : readme.index("\n### Kubernetes\n")]
    assert "ALLOWED_HOSTS" in docker
    assert "PUBLIC_URL" in docker


def test_kubernetes_allowed_hosts_is_a_valid_setting() -> None:
    documents = yaml_documents(DEPLOY / "k8s" / "server.yaml")
    env = {
        item["name"]: item.get("value")
        for doc in documents
        for container in _containers(doc)
        for item in container.get("env", [])
    }
    settings = load_settings(allowed_hosts=env["ALLOWED_HOSTS"], _env_file=None)
    assert "127.0.0.1" in settings.trusted_hosts  # the probes' and a port-forward's address


def test_kubernetes_server_probes_hit_real_routes_and_cronjobs_are_scheduled() -> None:
    documents = [doc for path in (DEPLOY / "k8s").glob("*.yaml") for doc in yaml_documents(path)]
    kinds = sorted(doc["kind"] for doc in documents)
    assert kinds == [
        "CronJob",
        "CronJob",
        "Deployment",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Secret",
        "Service",
    ]
    deployment = next(
        doc
        for doc in documents
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "parcelwatch"
    )
    container = _containers(deployment)[0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert [served(path) for path in ("/healthz", "/readyz", "/metrics")] == [200, 200, 200]
    assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    for cronjob in (doc for doc in documents if doc["kind"] == "CronJob"):
        fields = cronjob["spec"]["schedule"].split()
        assert len(fields) == 5
        assert all(CRON_FIELD.match(field) for field in fields)
    secret = next(doc for doc in documents if doc["kind"] == "Secret")
    assert all(
        "<" in value or value in ("true", "false", "587") for value in secret["stringData"].values()
    )


def test_systemd_units_and_timers_parse_and_point_at_each_other() -> None:
    directory = DEPLOY / "systemd"
    services = {path.name for path in directory.glob("*.service")}
    assert services == {
        "parcelwatch.service",
        "parcelwatch-worker@.service",
        "parcelwatch-sync.service",
        "parcelwatch-sync-force.service",
        "parcelwatch-alert.service",
    }
    for path in directory.glob("*.service"):
        unit = systemd_unit(path)
        assert unit["Service"]["User"] == "parcelwatch"
        assert unit["Service"]["ExecStart"].startswith("/opt/parcelwatch/bin/parcelwatch ")
    assert systemd_unit(directory / "parcelwatch.service")["Install"]["WantedBy"]
    worker = systemd_unit(directory / "parcelwatch-worker@.service")["Service"]
    assert worker["ExecStart"].endswith(" worker --metrics-port %i")
    assert worker["KillSignal"] == "SIGTERM"
    timers = list(directory.glob("*.timer"))
    assert len(timers) == 3
    for path in timers:
        unit = systemd_unit(path)
        assert unit["Timer"]["OnCalendar"]
        assert unit["Timer"]["Unit"] in services
        assert unit["Install"]["WantedBy"] == "timers.target"


def probed(path: str) -> int:
    """The status a worker's probe app answers for `path` (a worker that has not started its
    loops: alive is 503, not ready 503, metrics 200)."""
    from parcelwatch.sync.engine import SyncEngine
    from parcelwatch.sync.testing import StaticProviders
    from parcelwatch.sync.updater import Updater
    from parcelwatch.worker.probe import create_probe_app

    settings = load_settings(database_url="sqlite:///./deploy-check.db", _env_file=None)
    database = create_app(settings).state.database
    engine = SyncEngine(settings=settings, db=database, providers=StaticProviders({}))
    updater = Updater(engine)
    try:
        return TestClient(create_probe_app(settings, [updater], updater)).get(path).status_code
    finally:
        engine.close()
        database.dispose()


def test_kubernetes_workers_probe_their_own_port_under_a_disruption_budget_and_autoscaler() -> None:
    documents = yaml_documents(DEPLOY / "k8s" / "worker.yaml")
    by_kind = {doc["kind"]: doc for doc in documents}
    deployment = by_kind["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = _containers(deployment)[0]
    port = container["ports"][0]
    assert container["args"] == ["worker", "--metrics-port", str(port["containerPort"])]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert {item["name"]: item["value"] for item in container["env"]}["HOST"] == "0.0.0.0"
    assert [probed(path) for path in ("/healthz", "/readyz", "/metrics")] == [503, 503, 200]
    assert by_kind["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert by_kind["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    autoscaler = by_kind["HorizontalPodAutoscaler"]["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    metric = autoscaler["metrics"][0]["external"]["metric"]["name"]
    assert metric == "parcelwatch_shipments_due"
    assert metric in defined_metrics()


def test_crontab_lines_have_five_valid_time_fields() -> None:
    entries = crontab_entries()
    assert len(entries) == 3
    for fields, _ in entries:
        assert all(CRON_FIELD.match(field) for field in fields), fields
    assert entries[0][0] == ["*/15", "*", "*", "*", "*"]


# -- metrics -------------------------------------------------------------------------------


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "parcelwatch-rules.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "parcelwatch-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_prometheus_config_scrapes_metrics_and_loads_the_rules() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["parcelwatch-rules.yml"]
    assert (DEPLOY / "prometheus" / config["rule_files"][0]).exists()


def test_alert_rules_cover_the_operational_conditions() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "parcelwatch-rules.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name in (
        "ParcelwatchNoSuccessfulSync",
        "ParcelwatchHighErrorRate",
        "ParcelwatchCircuitBreakerOpen",
        "ParcelwatchBacklog",
        "ParcelwatchStaleShipments",
    ):
        assert name in alerts
    for rule in alerts.values():
        assert rule["labels"]["severity"] in ("warning", "critical")
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_referenced_metric_is_defined(source: str) -> None:
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    referenced = {name for expr in expressions for name in METRIC.findall(expr)}
    assert referenced
    assert referenced <= defined_metrics(), referenced - defined_metrics()


def exported_labels() -> dict[str, set[str]]:
    """The label names of each metric `parcelwatch.ops.metrics` registers at import."""
    labels: dict[str, set[str]] = {}
    for collector in vars(metrics).values():
        if isinstance(collector, Counter | Gauge | Histogram):
            name = collector._name  # noqa: SLF001 - prometheus_client has no public getter
            names = set(collector._labelnames)  # noqa: SLF001
            for suffix in SUFFIXES:
                labels[name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    return labels


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_rules_and_dashboard_group_by_labels_the_metric_has(source: str) -> None:
    """`provider` on the API-call metrics, `carrier` on the update metrics: a `by (...)` or
    `{{label}}` naming a label its metric does not export shows nothing."""
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    known = exported_labels()
    checked = 0
    for expr in expressions:
        grouped = {
            label.strip()
            for group in re.findall(r"\bby \(([^)]*)\)", expr)
            for label in group.split(",")
        }
        for name in METRIC.findall(expr):
            if name in known and grouped:
                assert grouped <= known[name], (expr, grouped - known[name])
                checked += 1
    assert checked


def test_api_call_alerts_name_the_provider_and_update_metrics_the_carrier() -> None:
    assert exported_labels()["parcelwatch_carrier_api_calls_total"] == {"provider", "outcome"}
    assert exported_labels()["parcelwatch_carrier_api_retries_total"] == {"provider"}
    assert exported_labels()["parcelwatch_carrier_circuit_open"] == {"provider"}
    assert exported_labels()["parcelwatch_update_attempts_total"] == {"carrier"}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "parcelwatch-rules.yml").read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    for name in ("ParcelwatchCarrierErrors", "ParcelwatchCircuitBreakerOpen"):
        assert "$labels.provider" in alerts[name]["annotations"]["summary"]


def test_the_dashboard_is_importable_grafana_json() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "parcelwatch-dashboard.json").read_text())
    assert dashboard["uid"] == "parcelwatch"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"}
        assert panel["targets"]
