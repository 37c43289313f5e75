"""deploy/ read as Docker, Compose, Helm, Kubernetes and nginx would: names and ports as
docs/contract.md says, every secret referenced and none written down, one Redis user per
component, a limit on every public location, and network policies that open exactly the
paths the components use. (No container engine runs here.)"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import redis as bot_redis
from bot.settings import GENERATED_SECRETS, ROOT

DEPLOY = ROOT / "deploy"
SECRETS = ("RASA_TOKEN", "RASA_JWT_SECRET", "CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN",
           "DATA_ENCRYPTION_KEY", "REDIS_PASSWORD", "REDIS_RASA_PASSWORD",
           "REDIS_CARD_SERVICE_PASSWORD", "REDIS_CONSOLE_PASSWORD", "REST_TOKEN")
# The Redis user each service connects as, and the variable holding its password.
REDIS_USERS = {"rasa": (bot_redis.RASA_USER, "REDIS_RASA_PASSWORD"),
               "card-service": (bot_redis.CARD_SERVICE_USER, "REDIS_CARD_SERVICE_PASSWORD"),
               "console": ("console", "REDIS_CONSOLE_PASSWORD")}
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
    # Each component as its own Redis user; the action servers use no Redis at all.
    for name in ("rasa-1", "card-service"):
        user, secret = REDIS_USERS["card-service" if name == "card-service" else "rasa"]
        assert env(services[name])["REDIS_URL"] == \
            f"redis://{user}:${{{secret}:?set {secret}}}@redis:6379/0", name
    assert env(services["rasa-1"])["REDIS_USERNAME"] == bot_redis.RASA_USER
    assert env(services["rasa-1"])["REDIS_PASSWORD"].startswith("${REDIS_RASA_PASSWORD")
    for name in ("actions-1", "actions-2"):
        assert not [key for key in env(services[name]) if key.startswith("REDIS_")]
    assert "REDIS_PASSWORD" not in card  # the admin's: Redis itself and operators only
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
                assert re.search(r":\$\{REDIS_\w*PASSWORD:\?[^}]*\}@", value), f"{name}: {key}"


def test_the_secrets_make_run_writes_are_the_ones_deploy_needs() -> None:
    """`.env` from `make run` is a complete --env-file for compose."""
    assert set(SECRETS) - {"REST_TOKEN"} <= set(GENERATED_SECRETS)


def test_redis_is_durable_and_private(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[:2] == ["sh", "/usr/local/bin/cardbot-redis-start"]
    assert "./redis-start.sh:/usr/local/bin/cardbot-redis-start:ro" in redis["volumes"]
    script = (DEPLOY / "redis-start.sh").read_text()
    for line in ("appendonly yes", "appendfsync always", "maxmemory-policy noeviction",
                 bot_redis.DEFAULT_USER_OFF):
        assert f"\n{line}\n" in script, line
    assert "requirepass" not in script and "requirepass" not in " ".join(command)
    assert {"REDIS_PASSWORD", "REDIS_RASA_PASSWORD", "REDIS_CARD_SERVICE_PASSWORD"} <= set(
        env(redis))
    assert "--user admin" in redis["healthcheck"]["test"][1]
    assert "ports" not in redis


def test_deploy_redis_users_are_those_of_bot_redis() -> None:
    """redis-start.sh writes each user with bot/redis.py's rules (the digest computed in the
    container), and the Kubernetes ConfigMap carries the same script."""
    script = (DEPLOY / "redis-start.sh").read_text()
    users = [line for line in script.splitlines() if line.startswith("user ")]
    expected = [bot_redis.DEFAULT_USER_OFF,
                'user admin on #$(digest "$REDIS_PASSWORD") ~* &* +@all']
    for user, secret in REDIS_USERS.values():
        expected.append(f"user {user} " + bot_redis.acl_rule(user, f'$(digest "${secret}")'))
    assert users == expected
    assert set(bot_redis.ACL_USERS) == {user for user, _ in REDIS_USERS.values()}
    maps = [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / "redis.yaml").read_text())
            if doc["kind"] == "ConfigMap"]
    assert maps[0]["data"]["redis-start.sh"] == script


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


Block = list[tuple[str, list[str], Any]]


def nginx_blocks(text: str) -> Block:
    """nginx.conf as (directive, arguments, block or None) in order, comments dropped."""
    tokens = re.findall(r'"(?:[^"\\]|\\.)*"|[{};]|[^\s{};"]+', re.sub(r"(?m)#.*$", "", text))
    position = 0

    def block() -> Block:
        nonlocal position
        parsed: Block = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == "}":
                return parsed
            if token == ";":
                parsed.append((words[0], words[1:], None))
                words = []
            elif token == "{":
                parsed.append((words[0], words[1:], block()))
                words = []
            else:
                words.append(token)
        return parsed

    return block()


def public_servers() -> dict[str, Block]:
    http = [inner for name, _, inner in nginx_blocks((DEPLOY / "nginx.conf").read_text())
            if name == "http"][0]
    servers = {}
    for name, _, inner in http:
        if name == "server":
            listen = [args[0] for directive, args, _ in inner if directive == "listen"][0]
            servers[listen] = inner
    return {port: servers[port] for port in ("80", "443")}


def test_nginx_limits_every_public_location_that_does_work() -> None:
    """Every public location that reaches Rasa or serves a file counts requests and open
    connections per client address and answers 429 past them (a location that only
    `return`s is answered before any limit is counted)."""
    conf = (DEPLOY / "nginx.conf").read_text()
    zones = re.findall(r"limit_(req|conn)_zone (\S+) zone=(\w+):\S+", conf)
    assert {key for _, key, _ in zones} == {"$binary_remote_addr"}
    assert "limit_req_status 429;" in conf and "limit_conn_status 429;" in conf
    declared = {name for _, _, name in zones}
    working = 0
    for port, server in public_servers().items():
        assert ("error_page", ["429", "@too_many"], None) in server, port
        for directive, args, inner in server:
            if directive != "location" or args[0] == "@too_many":
                continue
            names = {name for name, _, _ in inner}
            if names & {"proxy_pass", "root"}:
                working += 1
                used = [rule for name, rule, _ in inner if name in ("limit_req", "limit_conn")]
                kinds = {name for name, _, _ in inner if name.startswith("limit_")}
                assert kinds == {"limit_req", "limit_conn"}, (port, args)
                assert all(rule[0].removeprefix("zone=") in declared for rule in used)
            else:
                assert names <= {"return", "default_type"}, (port, args)
        too_many = [inner for directive, args, inner in server
                    if directive == "location" and args == ["@too_many"]][0]
        answer = [args for name, args, _ in too_many if name == "return"][0]
        assert answer[0] == "429" and "Too many requests" in answer[1]
        assert ("add_header", ["Retry-After", "1", "always"], None) in too_many
    assert working == 4  # ACME files on 80; socket.io, webhooks and the rest on 443


def test_webhooks_are_served_over_https_only() -> None:
    plain, tls = public_servers()["80"], public_servers()["443"]
    assert not [inner for directive, _, inner in plain if directive == "location"
                and any(name == "proxy_pass" for name, _, _ in inner)]
    refused = [(args, inner) for directive, args, inner in plain if directive == "location"
               and "webhooks" in " ".join(args)]
    answers = [args for name, args, _ in refused[0][1] if name == "return"]
    assert answers and answers[0][0] == "403" and "HTTPS only" in answers[0][1]
    served = [args for directive, args, _ in tls if directive == "location"]
    assert refused[0][0] in served  # the same channels, on 443


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
    rasa = load(DEPLOY / "helm" / "rasa-values.yaml")
    for path in (ROOT / "Procfile", DEPLOY / "rasa.Dockerfile",
                 DEPLOY / "helm" / "rasa-values.yaml"):
        text = path.read_text()
        assert "--auth-token" not in text and "--jwt-secret" not in text, path.name
        assert "$RASA_TOKEN" not in text and "$RASA_JWT_SECRET" not in text, path.name
    # Kubernetes expands $(VAR) in args and command: none may name a variable there.
    assert not [arg for arg in rasa["command"] + rasa["args"] if "$(" in arg]
    for path in (DEPLOY / "docker-compose.yml", DEPLOY / "k8s" / "redis.yaml"):
        assert "--requirepass" not in path.read_text(), path.name


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
    assert args[0] == "run" and args[args.index("--port") + 1] == "5005"
    refs = secret_refs(rasa["extraEnv"])
    # The chart sets RASA_TOKEN to its placeholder: the command puts ours there, from the
    # Secret, before `python -m bot.rasa run` reads it from the environment.
    shell, flag, script, name = rasa["command"]
    assert (shell, flag, name) == ("/bin/sh", "-c", "rasa")
    token_var = re.fullmatch(r'export RASA_TOKEN="\$(\w+)"; exec (.+) "\$@"', script)
    assert token_var and refs[token_var.group(1)] == "RASA_TOKEN"
    names = [item["name"] for item in rasa["extraEnv"]]
    assert "RASA_TOKEN" not in names and len(names) == len(set(names))  # no chart duplicate
    assert refs["RASA_JWT_SECRET"] == "RASA_JWT_SECRET"
    assert refs["REDIS_PASSWORD"] == "REDIS_RASA_PASSWORD"
    extra = {item["name"]: item.get("value") for item in rasa["extraEnv"]}
    assert extra["REDIS_USERNAME"] == bot_redis.RASA_USER
    assert extra["REDIS_URL"] == "redis://rasa:$(REDIS_PASSWORD)@cardbot-redis:6379/0"
    channels = set(rasa["applicationSettings"]["credentials"]["additionalChannelCredentials"])
    assert channels == set(load(ROOT / "credentials.yml"))
    # The same stores and action settings as endpoints.yml, and the same Rasa command.
    ours = load(ROOT / "endpoints.yml")
    endpoints = rasa["applicationSettings"]["endpoints"]
    for chart_key, key in (("trackerStore", "tracker_store"), ("lockStore", "lock_store")):
        assert endpoints[chart_key]["type"] == ours[key]["type"]
        assert endpoints[chart_key]["key_prefix"] == ours[key]["key_prefix"] == "cardbot"
    assert endpoints["additionalEndpoints"]["action_endpoint"] == ours["action_endpoint"]
    for chart_key in ("trackerStore", "lockStore"):
        assert endpoints[chart_key]["username"] == "${REDIS_USERNAME}"
    procfile_rasa = (ROOT / "Procfile").read_text().split("rasa: exec ", 1)[1].split(" run")[0]
    assert token_var.group(2) == procfile_rasa
    assert f"exec {procfile_rasa} run" in (DEPLOY / "rasa.Dockerfile").read_text()
    annotations = rasa["ingress"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    # The ingress limits per client address, with the platforms zone's figures of nginx.conf.
    conf = (DEPLOY / "nginx.conf").read_text()
    rate = re.search(r"zone=platforms:\S+ rate=(\d+)r/s", conf)
    burst = re.search(r"limit_req zone=platforms burst=(\d+)", conf)
    assert rate and burst
    assert annotations["nginx.ingress.kubernetes.io/limit-rps"] == rate.group(1)
    assert int(annotations["nginx.ingress.kubernetes.io/limit-burst-multiplier"]) * int(
        rate.group(1)) == int(burst.group(1))
    assert int(annotations["nginx.ingress.kubernetes.io/limit-connections"]) > 0

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
            "RASA_JWT_SECRET", "REDIS_CARD_SERVICE_PASSWORD"} <= set(refs.values())
    assert "REDIS_PASSWORD" not in refs.values()  # the admin's, not the card service's
    values = {item["name"]: item.get("value") for item in container["env"]}
    assert values["REDIS_URL"] == \
        "redis://card-service:$(REDIS_CARD_SERVICE_PASSWORD)@cardbot-redis:6379/0"
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


# Network policies -------------------------------------------------------------------------

# Pods by their `app.kubernetes.io/name`; the Helm charts name theirs after the chart.
COMPONENTS = {"rasa": "rasa", "rasa-action-server": "actions",
              "cardbot-card-service": "card-service", "cardbot-redis": "redis",
              "cardbot-staff": "staff"}
# Every path between the parts (source, destination, port); nothing else may be open.
PATHS = {("ingress", "rasa", 5005), ("card-service", "rasa", 5005),
         ("rasa", "actions", 5055), ("actions", "card-service", 8080),
         ("staff", "card-service", 8080), ("rasa", "redis", 6379),
         ("card-service", "redis", 6379)}


def manifests(kind: str) -> list[dict[str, Any]]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
            if doc["kind"] == kind]


def pods() -> list[dict[str, str]]:
    """The labels of every pod deploy/ makes: our workloads and the charts' Deployments."""
    labels = [doc["spec"]["template"]["metadata"]["labels"]
              for kind in ("Deployment", "StatefulSet") for doc in manifests(kind)]
    for values, chart in (("rasa-values.yaml", "rasa"),
                          ("rasa-action-server-values.yaml", "rasa-action-server")):
        chart_values = load(DEPLOY / "helm" / values)
        assert not chart_values.get("nameOverride"), values  # the policies select the name
        labels.append({"app.kubernetes.io/name": chart, **chart_values.get("podLabels", {})})
    return labels


def peer_name(peer: dict[str, Any]) -> str:
    if "ipBlock" in peer:
        return "internet"
    namespace = peer.get("namespaceSelector", {}).get("matchLabels", {})
    pod = peer["podSelector"]["matchLabels"]
    if namespace == {"kubernetes.io/metadata.name": "kube-system"}:
        assert pod == {"k8s-app": "kube-dns"}
        return "dns"
    if namespace:
        assert namespace == {"kubernetes.io/metadata.name": "ingress-nginx"}
        return "ingress"
    return COMPONENTS[pod["app.kubernetes.io/name"]]


def test_network_policies_deny_by_default_and_cover_every_pod() -> None:
    policies = manifests("NetworkPolicy")
    deny = [p for p in policies if p["spec"]["podSelector"] == {}]
    assert len(deny) == 1 and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny[0]["spec"] and "egress" not in deny[0]["spec"]
    selectors = [p["spec"]["podSelector"]["matchLabels"] for p in policies if p not in deny]
    assert all(set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} for p in policies)
    for labels in pods():
        chosen = [s for s in selectors if s.items() <= labels.items()]
        assert len(chosen) == 1, labels  # one policy says what this pod may do
        assert labels["app.kubernetes.io/name"] in COMPONENTS


def test_network_policies_open_exactly_the_paths_the_components_use() -> None:
    """A connection needs the source's egress and the destination's ingress: both sides
    list the same paths, and each pod reaches DNS (Redis excepted); the internet only Rasa,
    for the messaging apps' HTTPS APIs, and the card service, for the SMS provider's."""
    ingress, egress = set(), set()
    for policy in manifests("NetworkPolicy"):
        spec = policy["spec"]
        if not spec["podSelector"]:
            continue
        me = COMPONENTS[spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"]]
        for rule in spec.get("ingress", []):
            ingress |= {(peer_name(peer), me, port["port"])
                        for peer in rule["from"] for port in rule["ports"]}
        for rule in spec.get("egress", []):
            egress |= {(me, peer_name(peer), port["port"])
                       for peer in rule["to"] for port in rule["ports"]}
    assert ingress == PATHS
    outside = {(name, "dns", 53) for name in ("rasa", "actions", "card-service", "staff")}
    assert egress == {path for path in PATHS if path[0] != "ingress"} | outside | {
        ("rasa", "internet", 443), ("card-service", "internet", 443)}
    internet = [peer["ipBlock"] for policy in manifests("NetworkPolicy")
                for rule in policy["spec"].get("egress", []) for peer in rule["to"]
                if "ipBlock" in peer]
    assert all({"10.0.0.0/8", "169.254.0.0/16"} <= set(block["except"]) for block in internet)
