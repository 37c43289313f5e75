"""deploy/ read as Docker, Compose, Helm, Kubernetes and nginx would: names and ports as
docs/contract.md says, every secret referenced and none written down, one Redis user per
component, a limit on every public location, the staff console and Prometheus given what
the code reads, and network policies that open exactly the paths the components use. (No
container engine runs here.)"""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import metrics
from bot import redis as bot_redis
from bot.settings import GENERATED_SECRETS, ROOT, Settings, staffed_spans

DEPLOY = ROOT / "deploy"
SECRETS = ("RASA_TOKEN", "RASA_JWT_SECRET", "CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN",
           "CARD_SERVICE_CONSOLE_TOKEN", "DATA_ENCRYPTION_KEY", "REDIS_PASSWORD", "REDIS_RASA_PASSWORD",
           "REDIS_CARD_SERVICE_PASSWORD", "REDIS_CONSOLE_PASSWORD", "REST_TOKEN",
           "HANDOFF_TOKEN", "METRICS_TOKEN")
# The Redis user each service connects as, and the variable holding its password.
REDIS_USERS = {"rasa": (bot_redis.RASA_USER, "REDIS_RASA_PASSWORD"),
               "card-service": (bot_redis.CARD_SERVICE_USER, "REDIS_CARD_SERVICE_PASSWORD"),
               "console": ("console", "REDIS_CONSOLE_PASSWORD")}
REFERENCE = re.compile(r"^\$\{[A-Z_]+(:?[-?][^}]*)?\}$")
DEFAULTS = Settings.from_env({})


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
            "CARD_SERVICE_CONSOLE_TOKEN", "DATA_ENCRYPTION_KEY"} <= set(card)
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
    """`.env` from `make run` is a complete --env-file for compose: every variable compose
    refuses to start without is one `make run` writes. (REST_TOKEN, HANDOFF_TOKEN and
    METRICS_TOKEN may be left unset: REST stays closed, handoff and scrapes are refused.)"""
    required = set(re.findall(r"\$\{(\w+):\?", (DEPLOY / "docker-compose.yml").read_text()))
    assert required <= set(GENERATED_SECRETS), required - set(GENERATED_SECRETS)
    assert set(SECRETS) - {"REST_TOKEN", "HANDOFF_TOKEN", "METRICS_TOKEN"} <= required


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


def http_block() -> Block:
    return [inner for name, _, inner in nginx_blocks((DEPLOY / "nginx.conf").read_text())
            if name == "http"][0]


def public_servers() -> dict[str, Block]:
    http = http_block()
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
    assert "FROM python:3.10" in card
    assert f"EXPOSE {DEFAULTS.card_service_port} {DEFAULTS.staff_console_port}" in card
    assert '"card_service", "serve"' in card
    assert "argon2-cffi" in card  # the console's password hashes, from the same image
    for text in (rasa, actions, card):
        assert "requirements.lock" in text  # the same pinned versions as `make run`


def ignored(rules: list[str], path: str) -> bool:
    """A .dockerignore's verdict on a path of the context: the last rule that matches it or
    a folder above it wins; `!` brings a path back."""
    verdict = False
    parts = path.split("/")
    for rule in rules:
        pattern = rule.lstrip("!").rstrip("/")
        prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) and prefix.count("/") ==
                      pattern.count("/") for prefix in prefixes)
        if hit:
            verdict = not rule.startswith("!")
    return verdict


def test_each_image_is_sent_what_it_copies() -> None:
    """Every path a Dockerfile copies from the build context gets past its .dockerignore
    (a file left out fails the build), and nothing else is sent."""
    for name in ("rasa", "actions", "card-service"):
        dockerfile = (DEPLOY / f"{name}.Dockerfile").read_text()
        rules = [line for line in (DEPLOY / f"{name}.Dockerfile.dockerignore").read_text()
                 .splitlines() if line and not line.startswith("#")]
        copied = [part for line in dockerfile.splitlines()
                  if line.startswith("COPY ") and "--from=" not in line
                  for part in line.split()[1:-1] if not part.startswith("--")]
        assert copied, name
        for part in copied:
            assert (ROOT / part).exists(), (name, part)
            assert not ignored(rules, part), f"{name}.Dockerfile.dockerignore leaves out {part}"
        assert ignored(rules, ".env") and ignored(rules, "var/redis/appendonly.aof")
        assert ignored(rules, "bot/__pycache__/settings.cpython-310.pyc")


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
    assert {"CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN", "CARD_SERVICE_CONSOLE_TOKEN",
            "DATA_ENCRYPTION_KEY", "RASA_JWT_SECRET",
            "REDIS_CARD_SERVICE_PASSWORD"} <= set(refs.values())
    assert "REDIS_PASSWORD" not in refs.values()  # the admin's, not the card service's
    values = {item["name"]: item.get("value") for item in container["env"]}
    assert values["REDIS_URL"] == \
        "redis://card-service:$(REDIS_CARD_SERVICE_PASSWORD)@cardbot-redis:6379/0"
    assert container["ports"][0]["containerPort"] == 8080


def imported_modules(package: str) -> set[str]:
    """Every module of ours a package's files import, at the top or inside a function."""
    found = set()
    for path in (ROOT / package).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
    return {name for name in found if name.split(".")[0] in ("bot", "card_service", "console")}


def installed_with(requirements: list[str]) -> set[str]:
    """The distributions `pip install <requirements>` brings, dependencies included (as this
    environment resolved them)."""
    seen: set[str] = set()
    todo = list(requirements)
    while todo:
        name = re.sub(r"[-_.]+", "-", todo.pop()).lower()
        if name in seen:
            continue
        seen.add(name)
        try:
            requirements_of = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:  # tzdata: this host has its zones
            continue
        for requirement in requirements_of:
            if "extra ==" not in requirement:
                todo.append(re.split(r"[\s;<>=!~\[(]", requirement, maxsplit=1)[0])
    return seen


def test_card_service_image_runs_on_what_it_copies(tmp_path: Path) -> None:
    """The card service's image holds card_service/, console/ and a few files of bot/: each
    module the service, its staff tool and the staff console import, at start or later in a
    function, must be among them, and each package they load among those it installs."""
    card = (DEPLOY / "card-service.Dockerfile").read_text()
    copied = [part for line in card.splitlines() if line.startswith("COPY ")
              for part in line.split()[1:-1] if part != "/tmp/requirements.lock"
              and not part.startswith("requirements.lock")]
    assert {"card_service", "console"} <= set(copied)
    assert "bot" not in copied  # not the whole assistant
    for part in copied:
        source = ROOT / part
        target = tmp_path / part
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    wanted = imported_modules("card_service") | imported_modules("console") | {
        "card_service.app", "card_service.__main__", "console.app", "console.__main__"}
    # The editable install of this repository would serve any module the copy lacks: it goes
    # first. `from bot import redis` names a module, `from bot.x import NAME` a name: try both.
    # What this environment's .pth files load at start-up is no import of ours: left out.
    probe = ("import importlib, json, sys\n"
             "before = set(sys.modules)\n"
             "sys.meta_path[:] = [f for f in sys.meta_path\n"
             "                    if not getattr(f, '__module__', '').startswith('__editable')]\n"
             "sys.path_hooks[:] = [h for h in sys.path_hooks if 'Editable' not in repr(h)]\n"
             "sys.path_importer_cache.clear()\n"
             f"for name in {sorted(wanted)!r}:\n"
             "    parent, _, last = name.rpartition('.')\n"
             "    try:\n"
             "        importlib.import_module(name)\n"
             "    except ModuleNotFoundError as error:\n"
             "        if error.name != name or not parent:\n"
             "            raise\n"
             "        getattr(importlib.import_module(parent), last)\n"
             "print(json.dumps(sorted({m.split('.')[0] for m in set(sys.modules) - before}))); "
             "print(json.dumps(sorted(m for m in sys.modules if m.startswith('bot.'))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)},
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    top, ours = (json.loads(line) for line in done.stdout.splitlines()[-2:])
    assert not [name for name in ours if name.startswith(("bot.channels", "bot.stack"))]
    assert "rasa" not in top and "rasa_sdk" not in top
    # Each package loaded comes with the image's `pip install` (its dependencies included).
    pip = re.search(r"pip install [^\n]*\\\n(.*?)&&", card, re.S)
    assert pip
    # python:3.10-slim comes with pip, setuptools and wheel.
    installed = installed_with(pip.group(1).replace("\\", " ").split()) | {
        "pip", "setuptools", "wheel"}
    owners = importlib.metadata.packages_distributions()
    needed = {re.sub(r"[-_.]+", "-", owner).lower() for name in top
              if name not in sys.stdlib_module_names and name in owners
              for owner in owners[name]} - {"cardbot"}
    assert needed and needed <= installed, f"not installed: {sorted(needed - installed)}"


# The staff console, handoff and metrics ----------------------------------------------------

# What the console reads of its settings (console/*.py), and the variable each comes from.
CONSOLE_READS = {"bind_host": "BIND_HOST", "staff_console_port": "STAFF_CONSOLE_PORT",
                 "redis_url_for": "REDIS_URL", "console_token": "CARD_SERVICE_CONSOLE_TOKEN",
                 "card_service_url": "CARD_SERVICE_URL", "rasa_url": "RASA_URL",
                 "handoff_token": "HANDOFF_TOKEN", "prometheus_url": "PROMETHEUS_URL"}
# A value for every secret, to read a deployed environment as the code would.
GIVEN = {name: f"{name.lower()}-value" for name in SECRETS}


def interpolated(values: dict[str, str], given: dict[str, str]) -> dict[str, str]:
    """A compose environment as compose fills it: ${VAR:?...} from `given` (else an error),
    ${VAR:-default} from `given` or the default."""
    def fill(match: re.Match[str]) -> str:
        name, kind, default = match.group(1), match.group(2), match.group(3)
        if name in given:
            return given[name]
        assert kind == ":-", f"compose would refuse to start without {name}"
        return default

    return {key: re.sub(r"\$\{(\w+)(:[-?])([^}]*)\}", fill, value)
            for key, value in values.items()}


def pod_env(container: dict[str, Any], given: dict[str, str]) -> dict[str, str]:
    """A container's environment as Kubernetes fills it: Secret keys from `given` (an
    optional key may be absent), $(VAR) from the variables above it."""
    values: dict[str, str] = {}
    for item in container["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            if ref["key"] in given or not ref.get("optional"):
                values[item["name"]] = given[ref["key"]]
        else:
            values[item["name"]] = re.sub(r"\$\((\w+)\)", lambda m: values[m.group(1)],
                                          str(item["value"]))
    return values


def k8s(name: str, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / "k8s" / name).read_text())
            if doc["kind"] == kind]


def container_of(workload: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def services() -> dict[str, set[int]]:
    """Every Service name deploy/ makes and its ports: ours, and the Helm releases'."""
    found = {doc["metadata"]["name"]: {port["port"] for port in doc["spec"]["ports"]}
             for doc in manifests("Service")}
    for values in ("rasa-values.yaml", "rasa-action-server-values.yaml"):
        chart = load(DEPLOY / "helm" / values)
        found[chart["fullnameOverride"]] = {chart["applicationSettings"]["port"]}
    return found


def host_port(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"http://([\w.-]+):(\d+)", url)
    assert match, url
    return match.group(1), int(match.group(2))


def test_the_console_is_deployed_with_everything_it_reads() -> None:
    """A setting the console starts reading needs its variable in deploy/ too."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in (ROOT / "console").glob("*.py"))
    read = set(re.findall(r"\bsettings\.(\w+)", text))
    assert {"console_token", "redis_url_for", "staff_console_port"} <= read  # the scan works
    assert read <= set(CONSOLE_READS), \
        f"the console now reads {read - set(CONSOLE_READS)}: set it in deploy/ and here"


def test_compose_runs_the_console_for_staff_only(compose: dict[str, Any]) -> None:
    every = compose["services"]
    console, card = every["console"], every["card-service"]
    # The card service's image, built once (by that service), another command.
    assert console["image"] == card["image"] and "build" in card and "build" not in console
    assert console["command"] == ["python", "-m", "console", "serve"]
    values = env(console)
    assert set(CONSOLE_READS.values()) <= set(values)
    settings = Settings.from_env(interpolated(values, GIVEN))
    port = DEFAULTS.staff_console_port
    assert settings.staff_console_port == port and str(port) in console["expose"]
    assert console["ports"] == [f"127.0.0.1:{port}:{port}"]  # the host's loopback, no nginx
    assert f"127.0.0.1:{port}/health" in console["healthcheck"]["test"][-1]
    assert settings.redis_url_for(bot_redis.CONSOLE_USER) == \
        f"redis://console:{GIVEN['REDIS_CONSOLE_PASSWORD']}@redis:6379/0"
    assert settings.console_token == GIVEN["CARD_SERVICE_CONSOLE_TOKEN"]
    assert settings.handoff_token == GIVEN["HANDOFF_TOKEN"]
    # What it calls answers where it looks: the card service, any Rasa through nginx's
    # internal port, Prometheus.
    assert settings.card_service_url == f"http://card-service:{env(card)['CARD_SERVICE_PORT']}"
    assert host_port(settings.rasa_url) == ("nginx", 8000)
    internal = [inner for name, args, inner in http_block() if name == "server"
                and ("listen", ["8000"], None) in inner][0]
    root = [inner for name, args, inner in internal if (name, args) == ("location", ["/"])][0]
    assert ("proxy_pass", ["http://rasa_stateless"], None) in root
    host, prometheus_port = host_port(settings.prometheus_url)
    assert str(prometheus_port) in every[host]["expose"]
    # Nothing it does not use: no key to data at rest, no Rasa or service token, no admin.
    # The shared staff token stays with machines: the console names its people.
    assert not {"DATA_ENCRYPTION_KEY", "CARD_SERVICE_TOKEN", "CARD_SERVICE_STAFF_TOKEN",
                "RASA_TOKEN", "RASA_JWT_SECRET", "REDIS_PASSWORD", "METRICS_TOKEN"} & set(values)
    assert f":{port}" not in (DEPLOY / "nginx.conf").read_text()  # never behind nginx


def test_kubernetes_runs_the_console_as_compose_does(compose: dict[str, Any]) -> None:
    deployment = k8s("console.yaml", "Deployment")[0]
    container = container_of(deployment)
    card = container_of(k8s("card-service.yaml", "Deployment")[0])
    assert container["image"] == card["image"]
    assert container["command"] == compose["services"]["console"]["command"]
    assert deployment["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"] == \
        "cardbot-console"
    assert secret_refs(container["env"]) == {name: name for name in (
        "REDIS_CONSOLE_PASSWORD", "CARD_SERVICE_CONSOLE_TOKEN", "HANDOFF_TOKEN")}
    values = pod_env(container, GIVEN)
    assert set(values) - {"REDIS_CONSOLE_PASSWORD"} == set(env(compose["services"]["console"]))
    settings = Settings.from_env(values)
    port = DEFAULTS.staff_console_port
    assert settings.staff_console_port == port == container["ports"][0]["containerPort"]
    service = k8s("console.yaml", "Service")[0]
    assert service["spec"]["ports"][0]["port"] == port
    assert settings.redis_url_for(bot_redis.CONSOLE_USER) == \
        f"redis://console:{GIVEN['REDIS_CONSOLE_PASSWORD']}@cardbot-redis:6379/0"
    known = services()
    for url in (settings.card_service_url, settings.rasa_url, settings.prometheus_url):
        host, url_port = host_port(url)
        assert url_port in known.get(host, set()), url
    # Staff come in through their own ingress class, never the guardians' ingress.
    ingress = k8s("console.yaml", "Ingress")[0]
    guardians = load(DEPLOY / "helm" / "rasa-values.yaml")["ingress"]
    assert ingress["spec"]["ingressClassName"] != \
        guardians["annotations"]["kubernetes.io/ingress.class"]
    assert ingress["spec"]["tls"]  # its cookies are Secure: TLS ends at that controller
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]


def test_rasa_and_the_scraped_processes_get_handoff_and_metrics_settings(
        compose: dict[str, Any]) -> None:
    for name in ("rasa-1", "rasa-2"):
        settings = Settings.from_env(interpolated(env(compose["services"][name]), GIVEN))
        assert settings.handoff_token == GIVEN["HANDOFF_TOKEN"]
        assert settings.metrics_token == GIVEN["METRICS_TOKEN"]
        assert settings.staffed_hours == DEFAULTS.staffed_hours  # unset: the code's hours
    rasa = load(DEPLOY / "helm" / "rasa-values.yaml")["extraEnv"]
    assert {"HANDOFF_TOKEN", "METRICS_TOKEN"} <= set(secret_refs(rasa).values())
    hours = {item["name"]: item.get("value") for item in rasa}["STAFFED_HOURS"]
    assert staffed_spans(hours) == staffed_spans(DEFAULTS.staffed_hours)
    actions = load(DEPLOY / "helm" / "rasa-action-server-values.yaml")["extraEnv"]
    card = container_of(k8s("card-service.yaml", "Deployment")[0])["env"]
    for scraped in (rasa, actions, card):
        settings = Settings.from_env(pod_env({"env": scraped}, GIVEN))
        assert settings.metrics_enabled and settings.metrics_token == GIVEN["METRICS_TOKEN"]


def test_staff_paths_are_not_served_to_guardians() -> None:
    """/metrics and the agents' handoff API are for Prometheus and the console, inside: the
    public nginx and the Kubernetes ingress answer 404 before Rasa sees the request."""
    staff = ["/metrics", "/webhooks/handoff/queue",
             "/webhooks/handoff/conversations/webchat%3Aab/take"]
    guardians = ["/webhooks/rest/webhook", "/webhooks/webchat/chat/", "/socket.io/"]
    regexes = [(args[1], inner) for name, args, inner in public_servers()["443"]
               if name == "location" and args[0] == "~"]

    def first(path: str) -> Block | None:
        return next((inner for pattern, inner in regexes if re.search(pattern, path)), None)

    for path in staff:
        assert [(name, args) for name, args, _ in first(path) or []] == [("return", ["404"])]
    for path in guardians:
        assert ("return", ["404"], None) not in (first(path) or [])
    snippet = load(DEPLOY / "helm" / "rasa-values.yaml")["ingress"]["annotations"][
        "nginx.ingress.kubernetes.io/server-snippet"]
    refused = re.search(r"location ~ (\S+) \{ return 404; \}", snippet)
    assert refused
    assert all(re.search(refused.group(1), path) for path in staff)
    assert not any(re.search(refused.group(1), path) for path in guardians)


def test_prometheus_scrapes_the_same_jobs_in_kubernetes_as_in_compose(
        compose: dict[str, Any]) -> None:
    """Both configurations scrape each Rasa, each action server and the card service on the
    ports the code serves /metrics on, with METRICS_TOKEN from a file that is mounted
    there, and keep more than the dashboard's seven days."""
    local = load(DEPLOY / "prometheus.yml")
    config = yaml.safe_load(k8s("prometheus.yaml", "ConfigMap")[0]["data"]["prometheus.yml"])
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {job["job_name"] for job in local["scrape_configs"]} == {
        "rasa", "actions", "card-service"}
    # The token: a Secret key mounted as a file in Kubernetes, a compose secret in compose.
    statefulset = k8s("prometheus.yaml", "StatefulSet")[0]
    container = container_of(statefulset)
    volumes = {volume["name"]: volume for volume in statefulset["spec"]["template"]["spec"][
        "volumes"]}
    files: dict[str, str] = {}
    for mount in container["volumeMounts"]:
        secret = volumes.get(mount["name"], {}).get("secret")
        if secret:
            assert secret["secretName"] == "cardbot-secrets"
            files |= {item["key"]: f"{mount['mountPath']}/{item['path']}"
                      for item in secret["items"]}
    assert set(files) == {"METRICS_TOKEN"}
    prometheus = compose["services"]["prometheus"]
    assert compose["secrets"]["metrics_token"] == {"environment": "METRICS_TOKEN"}
    mounted = {secret["source"]: secret["target"] for secret in prometheus["secrets"]}
    for job, token_file in [(job, files["METRICS_TOKEN"]) for job in jobs.values()] + [
            (job, mounted["metrics_token"]) for job in local["scrape_configs"]]:
        assert job["metrics_path"] == metrics.PATH
        assert job["authorization"] == {"type": "Bearer", "credentials_file": token_file}
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    # Every pod of a component through a headless Service that selects exactly those pods.
    headless = {doc["metadata"]["name"]: doc for doc in k8s("prometheus.yaml", "Service")
                if doc["spec"].get("clusterIP") == "None"}
    for job, chart, port in (("rasa", "rasa", DEFAULTS.rasa_port),
                             ("actions", "rasa-action-server", DEFAULTS.actions_port)):
        (discovery,) = jobs[job]["dns_sd_configs"]
        (name,) = discovery["names"]
        assert headless[name]["spec"]["selector"] == {"app.kubernetes.io/name": chart}
        assert discovery["type"] == "A" and discovery["port"] == port
        assert headless[name]["spec"]["ports"][0]["port"] == port
    assert services()["cardbot-rasa"] == {DEFAULTS.rasa_port}
    assert services()["cardbot-actions"] == {DEFAULTS.actions_port}
    (card,) = jobs["card-service"]["static_configs"][0]["targets"]
    host, port = card.split(":")
    assert int(port) == DEFAULTS.card_service_port and int(port) in services()[host]
    # The console's PROMETHEUS_URL is this Service; 15 days kept in both.
    console = Settings.from_env(pod_env(container_of(k8s("console.yaml", "Deployment")[0]),
                                        GIVEN))
    host, port_number = host_port(console.prometheus_url)
    service = [doc for doc in k8s("prometheus.yaml", "Service")
               if doc["metadata"]["name"] == host][0]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["port"] == port_number == \
        container["ports"][0]["containerPort"]
    for args in (container["args"], prometheus["command"]):
        kept = [arg for arg in args if arg.startswith("--storage.tsdb.retention.time=")]
        assert kept and int(kept[0].split("=")[1].rstrip("d")) > 7


# Network policies -------------------------------------------------------------------------

# Pods by their `app.kubernetes.io/name`; the Helm charts name theirs after the chart.
COMPONENTS = {"rasa": "rasa", "rasa-action-server": "actions",
              "cardbot-card-service": "card-service", "cardbot-redis": "redis",
              "cardbot-staff": "staff", "cardbot-console": "console",
              "cardbot-prometheus": "prometheus"}
# The guardians' ingress controller, and the staff network's (the console's way in).
INGRESS_NAMESPACES = {"ingress-nginx": "ingress", "ingress-staff": "staff-ingress"}
# Every path between the parts (source, destination, port); nothing else may be open.
# Where each listens: the code's default ports (docs/contract.md), Redis's and Prometheus's.
LISTENS = {"rasa": DEFAULTS.rasa_port, "actions": DEFAULTS.actions_port,
           "card-service": DEFAULTS.card_service_port, "console": DEFAULTS.staff_console_port,
           "redis": 6379, "prometheus": 9090}
PATHS = {(source, target, LISTENS[target]) for source, target in (
    ("ingress", "rasa"), ("card-service", "rasa"), ("rasa", "actions"),
    ("actions", "card-service"), ("staff", "card-service"), ("rasa", "redis"),
    ("card-service", "redis"),
    # The staff console: staff through their own ingress controller; it keeps its accounts in
    # Redis, reads reports through the card service, calls Rasa's handoff API and reads the
    # dashboard's figures from Prometheus.
    ("staff-ingress", "console"), ("console", "redis"), ("console", "card-service"),
    ("console", "rasa"), ("console", "prometheus"),
    # Prometheus scrapes /metrics on each process's own port.
    ("prometheus", "rasa"), ("prometheus", "actions"), ("prometheus", "card-service"))}


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
        assert set(namespace) == {"kubernetes.io/metadata.name"}
        assert pod == {"app.kubernetes.io/name": "ingress-nginx"}
        return INGRESS_NAMESPACES[namespace["kubernetes.io/metadata.name"]]
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


def test_network_policies_name_the_ports_the_pods_listen_on() -> None:
    """LISTENS, which the paths use, is what each pod of deploy/ serves on."""
    served = {COMPONENTS[doc["spec"]["template"]["metadata"]["labels"][
        "app.kubernetes.io/name"]]: {port["containerPort"] for port in container_of(doc)["ports"]}
        for kind in ("Deployment", "StatefulSet") for doc in manifests(kind)}
    served["rasa"] = {load(DEPLOY / "helm" / "rasa-values.yaml")["applicationSettings"]["port"]}
    served["actions"] = {load(DEPLOY / "helm" / "rasa-action-server-values.yaml")[
        "applicationSettings"]["port"]}
    assert {name: {port} for name, port in LISTENS.items()} == served


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
    outside = {(name, "dns", 53) for name in ("rasa", "actions", "card-service", "staff",
                                              "console", "prometheus")}
    assert egress == {path for path in PATHS if "ingress" not in path[0]} | outside | {
        ("rasa", "internet", 443), ("card-service", "internet", 443)}
    internet = [peer["ipBlock"] for policy in manifests("NetworkPolicy")
                for rule in policy["spec"].get("egress", []) for peer in rule["to"]
                if "ipBlock" in peer]
    assert all({"10.0.0.0/8", "169.254.0.0/16"} <= set(block["except"]) for block in internet)


def test_promtool_accepts_the_prometheus_config() -> None:
    """Prometheus's own check (Debian's promtool, as `make test` installs it); the token
    file it names exists only inside the container, so files are not looked for."""
    from tests.testkit.prometheus import INSTALL, PROMTOOL

    if not shutil.which(PROMTOOL):
        pytest.fail(f"{PROMTOOL} not found: {INSTALL}")
    done = subprocess.run([PROMTOOL, "check", "config", "--syntax-only",
                           str(DEPLOY / "prometheus.yml")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
