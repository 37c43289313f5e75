"""deploy/ read as Docker, Compose, Helm and Kubernetes would: names and ports as docs/contract.md
says, every secret referenced and none written down. (No container engine runs here.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.settings import ROOT

DEPLOY = ROOT / "deploy"
SECRETS = ("RASA_TOKEN", "RASA_JWT_SECRET", "CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN",
           "DATA_ENCRYPTION_KEY", "REDIS_PASSWORD", "REST_TOKEN")
REFERENCE = re.compile(r"^\$\{[A-Z_]+(:?[-?][^}]*)?\}$")


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(DEPLOY / "docker-compose.yml")


def env(service: dict[str, Any]) -> dict[str, str]:
    return {name: str(value) for name, value in (service.get("environment") or {}).items()}


def test_every_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert len(files) >= 5
    for path in files:
        documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
        assert documents and all(isinstance(doc, dict) for doc in documents), path


def test_compose_has_the_parts_and_counts(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"redis", "card-service", "actions-1", "actions-2", "rasa-1", "rasa-2",
            "nginx"} <= set(services)


def test_compose_ports_and_names_match_the_contract(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("rasa-1", "rasa-2"):
        rasa = env(services[name])
        assert rasa["RASA_PORT"] == "5005" and "5005" in services[name]["expose"]
        assert {"RASA_TOKEN", "RASA_JWT_SECRET", "REDIS_URL", "ACTIONS_URL"} <= set(rasa)
    for name in ("actions-1", "actions-2"):
        actions = env(services[name])
        assert actions["ACTIONS_PORT"] == "5055" and "5055" in services[name]["expose"]
        assert "CARD_SERVICE_TOKEN" in actions
        assert actions["CARD_SERVICE_URL"].endswith(":8080")
    card = env(services["card-service"])
    assert card["CARD_SERVICE_PORT"] == "8080"
    assert {"REDIS_URL", "RASA_JWT_SECRET", "CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN",
            "DATA_ENCRYPTION_KEY"} <= set(card)
    assert "RASA_TOKEN" not in card  # the narrowest credential: a one-conversation token


def test_rasa_gets_every_variable_endpoints_yml_reads(compose: dict[str, Any]) -> None:
    lines = (ROOT / "endpoints.yml").read_text().splitlines()
    settings = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    wanted = set(re.findall(r"\$\{(\w+)\}", settings))
    assert wanted, "endpoints.yml reads its settings from the environment"
    for name in ("rasa-1", "rasa-2"):
        assert wanted <= set(env(compose["services"][name])), wanted - set(
            env(compose["services"][name]))


def test_compose_writes_no_secret_down(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in env(service).items():
            if key in SECRETS:
                assert REFERENCE.match(value), f"{name}: {key} must come from the environment"
            if "@" in value and value.startswith("redis://"):
                assert "${REDIS_PASSWORD" in value, f"{name}: {key}"


def test_redis_is_durable_and_private(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync always" in command
    assert "--requirepass" in command
    assert "ports" not in redis


def test_only_nginx_faces_the_internet_on_80_and_443(compose: dict[str, Any]) -> None:
    published = {name: service.get("ports", []) for name, service in
                 compose["services"].items() if service.get("ports")}
    assert sorted(published["nginx"]) == ["443:443", "80:80"]
    # The staff API may be published, but on the host's loopback only.
    for name, ports in published.items():
        if name != "nginx":
            assert all(str(port).startswith("127.0.0.1:") for port in ports), name


def test_nginx_is_sticky_and_upgrades_websockets() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream rasa \{(.*?)\}", conf, re.S)
    assert upstream and ("ip_hash;" in upstream.group(1) or "hash " in upstream.group(1))
    assert "rasa-1:5005" in upstream.group(1) and "rasa-2:5005" in upstream.group(1)
    assert "actions-1:5055" in conf and "actions-2:5055" in conf
    assert "proxy_set_header Upgrade $http_upgrade" in conf
    assert re.search(r"location /socket\.io/", conf)
    assert re.search(r"listen 443 ssl", conf) and re.search(r"listen 80;", conf)
    assert conf.count("{") == conf.count("}")


def test_nginx_logs_no_query_string() -> None:
    conf = (DEPLOY / "nginx.conf").read_text()
    used = re.findall(r"access_log\s+\S+\s+(\w+);", conf)
    assert used == ["private"]
    shape = re.search(r"log_format private (.*?);", conf, re.S)
    assert shape and "$uri" in shape.group(1)
    for variable in ("$request ", "$request\"", "$request_uri", "$args", "$query_string"):
        assert variable not in shape.group(1)


def test_no_secret_on_a_command_line() -> None:
    """`ps` shows every process's arguments to every user of the host."""
    for path in (ROOT / "Procfile", DEPLOY / "rasa.Dockerfile"):
        text = path.read_text()
        assert "--auth-token" not in text and "--jwt-secret" not in text, path.name
        assert "$RASA_TOKEN" not in text and "$RASA_JWT_SECRET" not in text, path.name


def test_dockerfiles_expose_the_contract_ports_and_bring_our_code() -> None:
    rasa = (DEPLOY / "rasa.Dockerfile").read_text()
    assert "FROM rasa/rasa:3.6.21" in rasa and "EXPOSE 5005" in rasa
    assert "models/bot.tar.gz" in rasa and "COPY --chown=1001:0 bot /app/bot" in rasa
    assert "python-socketio" in rasa and "jieba" in rasa
    actions = (DEPLOY / "actions.Dockerfile").read_text()
    assert "FROM rasa/rasa-sdk:3.6.2" in actions and "EXPOSE 5055" in actions
    assert "actions /app/actions" in actions and "bot /app/bot" in actions
    card = (DEPLOY / "card-service.Dockerfile").read_text()
    assert "FROM python:3.10" in card and "EXPOSE 8080" in card
    assert '"card_service", "serve"' in card
    for text in (rasa, actions, card):
        assert "requirements.lock" in text  # the same pinned versions as `make run`


def test_build_contexts_send_no_secrets_or_data() -> None:
    for name in ("rasa", "actions", "card-service"):
        ignore = (DEPLOY / f"{name}.Dockerfile.dockerignore").read_text().splitlines()
        rules = [line for line in ignore if line and not line.startswith("#")]
        assert rules[0] == "*", name  # allow-list: .env, .venv and var/ stay out
        assert not any(rule.lstrip("!").startswith((".env", "var", ".venv")) for rule in rules)


def secret_refs(items: list[dict[str, Any]]) -> dict[str, str]:
    return {item["name"]: item["valueFrom"]["secretKeyRef"]["key"]
            for item in items if "valueFrom" in item}


def test_helm_values_use_our_images_ports_and_secrets() -> None:
    rasa = load(DEPLOY / "helm" / "rasa-values.yaml")
    assert rasa["applicationSettings"]["port"] == 5005
    assert rasa["replicaCount"] >= 2
    args = rasa["args"]
    assert args[args.index("--port") + 1] == "5005"
    token_var = args[args.index("--auth-token") + 1]
    refs = secret_refs(rasa["extraEnv"])
    assert refs[token_var.strip("$()")] == "RASA_TOKEN"
    assert refs["REDIS_PASSWORD"] == "REDIS_PASSWORD"
    channels = set(rasa["applicationSettings"]["credentials"]["additionalChannelCredentials"])
    assert channels == set(load(ROOT / "credentials.yml"))
    # The same stores and action settings as endpoints.yml, and the same Rasa command.
    ours = load(ROOT / "endpoints.yml")
    endpoints = rasa["applicationSettings"]["endpoints"]
    for chart_key, key in (("trackerStore", "tracker_store"), ("lockStore", "lock_store")):
        assert endpoints[chart_key]["type"] == ours[key]["type"]
        assert endpoints[chart_key]["key_prefix"] == ours[key]["key_prefix"] == "cardbot"
    assert endpoints["additionalEndpoints"]["action_endpoint"] == ours["action_endpoint"]
    procfile_rasa = (ROOT / "Procfile").read_text().split("rasa: exec ", 1)[1].split(" run")[0]
    assert rasa["command"] == procfile_rasa.split()
    assert f"exec {procfile_rasa} run" in (DEPLOY / "rasa.Dockerfile").read_text()
    annotations = rasa["ingress"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"

    actions = load(DEPLOY / "helm" / "rasa-action-server-values.yaml")
    assert actions["applicationSettings"]["port"] == 5055
    assert actions["service"]["port"] == 5055
    assert secret_refs(actions["extraEnv"])["CARD_SERVICE_TOKEN"] == "CARD_SERVICE_TOKEN"
    assert not actions["ingress"]["enabled"]  # rasa-sdk has no authentication


def test_kubernetes_manifests_reference_secrets_and_inline_none() -> None:
    kinds = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            kinds.append(doc["kind"])
            assert doc["kind"] != "Secret", f"{path.name}: a Secret with values in git"
            text = yaml.safe_dump(doc)
            for secret in SECRETS:
                for match in re.finditer(rf"name: {secret}\n\s+value: (.+)", text):
                    pytest.fail(f"{path.name}: {secret} inlined as {match.group(1)}")
    assert {"Deployment", "StatefulSet", "Service"} <= set(kinds)
    card = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "card-service.yaml").read_text())
            if doc["kind"] == "Deployment"][0]
    container = card["spec"]["template"]["spec"]["containers"][0]
    refs = secret_refs(container["env"])
    assert {"CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN", "DATA_ENCRYPTION_KEY",
            "RASA_JWT_SECRET", "REDIS_PASSWORD"} <= set(refs.values())
    assert container["ports"][0]["containerPort"] == 8080


def test_card_service_image_runs_on_what_it_copies(tmp_path: Path) -> None:
    """The card service's image holds card_service/ and a few files of bot/: each import the
    service and its staff tool make must be among them."""
    card = (DEPLOY / "card-service.Dockerfile").read_text()
    copied = [part for line in card.splitlines() if line.startswith("COPY ")
              for part in line.split()[1:-1] if part != "/tmp/requirements.lock"
              and not part.startswith("requirements.lock")]
    assert "card_service" in copied and "bot" not in copied  # not the whole assistant
    for part in copied:
        source = ROOT / part
        target = tmp_path / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    probe = ("import card_service.app, card_service.__main__, sys; "
             "print(sorted(m for m in sys.modules if m == 'bot' or m.startswith('bot.')))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bot.channels" not in done.stdout and "bot.rasa" not in done.stdout
