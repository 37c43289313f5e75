"""`make bench`: the real stack under N concurrent guardians, a bare-Rasa baseline, NLU.

    .venv/bin/python -m tools.bench.run               # everything; rewrites BENCHMARKS.md
    .venv/bin/python -m tools.bench.run --levels 1 2 --no-baseline --no-nlu --out /tmp/b
    .venv/bin/python -m tools.bench.run --only ab --ab-rounds 4   # metrics/handoff cost only

Each level starts N guardians at once, each holding one whole conversation, and ends when
they are done (bounded by count, not time). All traffic goes to 127.0.0.1. The stack is
measured as `make run` starts it (one Rasa) and as deploy/ serves it on this machine
(`cluster`: Debian's nginx with deploy/nginx.conf and TLS in front of two Rasas). Raw figures go
to `<out>/results.json`, plots to `<out>/*.png`, the summary to BENCHMARKS.md. The metrics'
and the handoff hook's cost per turn are measured by interleaved A/B rounds on stacks of
their own (tools/bench/ab.py), after the load levels; `--only ab` runs that section alone and
writes to results/bench/ab/ (not kept in git), never to BENCHMARKS.md unless told.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import requests

from bot import redis as bot_redis
from bot.settings import ROOT, Settings
from tests.testkit.nginx import MISSING, NGINX, Nginx
from tests.testkit.processes import Process, free_port, wait_for
from tests.testkit.redis_server import RedisServer
from tests.testkit.stack import Stack
from tools.bench import ab, baseline, machine, nlu_compare, report
from tools.bench.clients import RestGuardian, SocketGuardian
from tools.bench.conversations import (
    Script,
    filing_in_one_message,
    filing_one_at_a_time,
    greeting_only,
    loss_report,
    moodbot,
)
from tools.bench.load import Level, run_level
from tools.bench.profile import (
    CountingProxy,
    RedisWatch,
    categorise,
    inclusive,
    profile_conversation,
    py_spy,
)

LEVELS = (1, 8, 32, 64)
CHANNELS = ("rest", "socketio")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=list(LEVELS),
                        help="concurrent guardians per level (default 1 8 32 64)")
    parser.add_argument("--channels", nargs="+", default=list(CHANNELS), choices=CHANNELS)
    parser.add_argument("--no-baseline", action="store_true", help="skip the bare Rasa bot")
    parser.add_argument("--no-nlu", action="store_true",
                        help="skip training and evaluating our NLU and Rasa's default")
    parser.add_argument("--nlu-from", metavar="RESULTS_JSON",
                        help="with --no-nlu: show the NLU comparison of an earlier run's "
                        "results.json (marked with its date) instead of none")
    parser.add_argument("--no-cluster", action="store_true",
                        help="skip nginx in front of two Rasas")
    parser.add_argument("--webchat-transport", choices=("websocket", "polling"),
                        default="websocket",
                        help="the web chat's socket.io transport: the websocket the widget "
                        "upgrades to (default), or long polling throughout")
    parser.add_argument("--out", default=None,
                        help="plots and results.json (default docs/bench)")
    parser.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE",
                        help="extra environment for the stack's processes (experiments, "
                        "e.g. SANIC_WORKERS=2)")
    parser.add_argument("--markdown", default=None,
                        help="the report to rewrite (default BENCHMARKS.md; with --only ab, "
                        "<out>/ab.md holding that section alone)")
    parser.add_argument("--only", choices=("ab",),
                        help="run one section alone: ab, the metrics' and the handoff hook's "
                        "cost per turn (default out: results/bench/ab)")
    parser.add_argument("--no-ab", action="store_true",
                        help="skip the metrics and handoff-hook A/B rounds")
    parser.add_argument("--ab-rounds", type=int, default=10,
                        help="A/B rounds, each arm once per channel per round (default 10)")
    parser.add_argument("--ab-n", type=int, default=8,
                        help="concurrent guardians in each A/B level (default 8)")
    args = parser.parse_args(argv)
    if args.only == "ab" and args.no_ab:
        parser.error("--only ab with --no-ab runs nothing")
    if args.ab_rounds < 1 or args.ab_n < 1:
        parser.error("--ab-rounds and --ab-n must be at least 1")
    if args.out is None:
        args.out = str(ROOT / ("results/bench/ab" if args.only else "docs/bench"))
    if args.markdown is None:
        args.markdown = str(Path(args.out) / "ab.md" if args.only else ROOT / "BENCHMARKS.md")
    return args


def say(line: str) -> None:
    print(f"bench: {line}", flush=True)


def staff_references(settings: Settings) -> set[str]:
    response = requests.get(f"{settings.card_service_url}/v1/loss-reports",
                            params={"limit": "500"}, timeout=30,
                            headers={"Authorization": f"Bearer {settings.staff_token}"})
    response.raise_for_status()
    return {report["reference"] for report in response.json()["reports"]}


def report_count(redis_url: str) -> int:
    # The staff list stops at 500; the index holds them all (card_service/store.py).
    return int(bot_redis.client(redis_url, "tool").zcard(bot_redis.CARD_SERVICE + "reports"))


class ReportLedger:
    """The card service's reports before a level, to check what the level added."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.snapshot()

    def snapshot(self) -> None:
        self.references = staff_references(self.settings)
        self.count = report_count(self.settings.redis_url)

    def check(self, level: Level) -> None:
        """Exactly one report per finished conversation, and none more."""
        new_refs = staff_references(self.settings) - self.references
        added = report_count(self.settings.redis_url) - self.count
        finished = set(level.references)
        ok = (added == level.finished and new_refs == finished
              and len(finished) == level.finished)
        level.reports_check = (
            f"{'ok' if ok else 'MISMATCH'}: {level.finished} finished, {added} new reports, "
            f"{len(finished & new_refs)} matched by reference")
        if not ok:
            level.errors += 1
        self.snapshot()


def server_processes(stack: Stack, redis_server: RedisServer) -> dict[str, psutil.Process]:
    named = {"redis": redis_server.process.popen}
    named.update({name: process.popen for name, process in stack.processes.items()})
    return {name: psutil.Process(popen.pid) for name, popen in named.items() if popen}


async def channel_levels(channel: str, levels: list[int], rasa_url: str,
                         script_for: Callable[[int], Script], expected: dict[str, list[int]],
                         servers: dict[str, psutil.Process], target: str, first_index: int,
                         after_level: Callable[[Level], None],
                         think_s: float = 0.0, ssl_context: ssl.SSLContext | None = None,
                         spread_sources: bool = False,
                         transport: str = "websocket") -> list[Level]:
    results = []
    connector = aiohttp.TCPConnector(limit=0, ssl=ssl_context if ssl_context else True)
    async with aiohttp.ClientSession(connector=connector) as session:
        rest = RestGuardian(session, rasa_url, think_s)
        socket = SocketGuardian(rasa_url, expected, think_s, ssl_context, spread_sources,
                                transport)
        converse = rest.converse if channel == "rest" else socket.converse
        index = first_index
        for n in levels:
            level = await run_level(channel, target, n, converse, script_for, index, servers)
            index += n
            after_level(level)
            say(f"{target} {channel} N={n}: p50 {level.p50_ms:.0f} ms, p95 "
                f"{level.p95_ms:.0f} ms, p99 {level.p99_ms:.0f} ms, "
                f"{level.turns_per_s:.1f} turns/s, {level.errors} errors "
                f"{level.reports_check}")
            for sample in level.error_samples:
                say(f"  error: {sample}")
            results.append(level)
    return results


async def calibrate(rasa_url: str, script_for: Callable[[int], Script],
                    indexes: list[int]) -> dict[str, list[int]]:
    """Warm the model up over REST and learn how many replies each turn gets."""
    expected: dict[str, list[int]] = {}
    async with aiohttp.ClientSession() as session:
        guardian = RestGuardian(session, rasa_url)
        for index in indexes:
            script = script_for(index)
            outcome = await guardian.converse(script)
            if not outcome.finished:
                raise RuntimeError(f"warm-up conversation ({script.language}) failed: "
                                   f"{outcome.errors}")
            expected[script.language] = outcome.replies
    return expected


async def turns_to_filing(rasa_url: str) -> list[dict[str, Any]]:
    """How many messages a guardian sends from the loss to the filed reference: every detail
    on its own, or all seven in one message, in each language."""
    found = []
    async with aiohttp.ClientSession() as session:
        guardian = RestGuardian(session, rasa_url)
        for style, script_for in (("one at a time", filing_one_at_a_time),
                                  ("all in one message", filing_in_one_message)):
            for index in (400, 401):
                script = script_for(index)
                outcome = await guardian.converse(script)
                found.append({"style": style, "language": script.language,
                              "turns": len(outcome.latencies),
                              "filed": outcome.finished and outcome.reference is not None,
                              "errors": outcome.errors})
    return found


async def sample_rasa(profiled: Process, settings: Settings,
                      work: Path) -> dict[str, Any] | None:
    """py-spy samples of the profiled Rasa over a few conversations, by part of Rasa."""
    binary = py_spy()
    if binary is None or profiled.popen is None:
        say("profile: py-spy not installed, no sampling (pip install py-spy)")
        return None
    out = work / "py-spy.txt"
    sampler = subprocess.Popen(
        [binary, "record", "--pid", str(profiled.popen.pid), "--rate", "250", "--nonblocking",
         "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(1.0)
        async with aiohttp.ClientSession() as session:
            guardian = RestGuardian(session, settings.rasa_url)
            for index in (3, 4, 5, 6):
                await guardian.converse(loss_report(index))
    finally:
        sampler.send_signal(signal.SIGINT)
        try:
            sampler.wait(30)
        except subprocess.TimeoutExpired:
            sampler.kill()
    if not out.exists():
        say("profile: py-spy wrote nothing (ptrace not allowed here?)")
        return None
    collapsed = out.read_text(errors="replace")
    # Collapsed stacks for a flame graph: megabytes, so beside the test results, not in git.
    keep = ROOT / "results" / "bench"
    keep.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, keep / "py-spy-rasa.txt")
    return {"conversations": 4, "samples": categorise(collapsed),
            "inclusive": inclusive(collapsed)}


async def bench_stack(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    redis_dir = work / "redis"
    redis_dir.mkdir()
    redis_server = RedisServer(redis_dir, work).start()
    overrides = dict(item.split("=", 1) for item in args.env)
    stack = Stack(redis_server.url, work,
                  {"DATA_ENCRYPTION_KEY": "bench-data-encryption-key-0123456789", **overrides})
    # A second Rasa of the same stack, its actions through the counting proxy: profiled
    # alone, and stopped before the load starts.
    proxy_port, profiled_port = free_port(), free_port()
    profiled_env = {**stack.env, "RASA_PORT": str(profiled_port),
                    "ACTIONS_URL": f"http://127.0.0.1:{proxy_port}/webhook"}
    profiled = Process("rasa-profiled", stack.processes["rasa"].command, profiled_env, work)
    # The cluster's second Rasa: the same stack on its own port, started with the others.
    second = None
    if not args.no_cluster:
        if not NGINX.exists():
            raise SystemExit(MISSING)
        second = Process("rasa-2", stack.processes["rasa"].command,
                         {**stack.env, "RASA_PORT": str(free_port())}, work)
    profiled_settings = Settings.from_env(profiled_env)
    proxy = CountingProxy(f"{stack.settings.actions_url}/webhook")

    training = None
    if not args.no_baseline:
        baseline.prepare()
        training_started = time.monotonic()
        training = baseline.start_training(baseline.DIRECTORY, work / "baseline-train.log")
        say("baseline: " + ("training the rasa init bot (fixed seed)" if training
                            else "reusing the trained rasa init bot"))
    try:
        started = time.monotonic()
        profiled.start()
        if second is not None:
            second.start()
        stack.start(timeout=600)
        from bot.stack.health import rasa_ready

        wait_for(lambda: rasa_ready(profiled_settings), 600, "profiled rasa")
        if second is not None:
            second_settings = Settings.from_env(second.env)
            wait_for(lambda: rasa_ready(second_settings), 600, "second rasa")
        results["startup_s"] = round(time.monotonic() - started, 1)
        say(f"stack up in {results['startup_s']} s")
        # Side jobs first, so the measured runs have the cores to themselves.
        if training is not None or not args.no_baseline:
            results["baseline_training_s"] = baseline.finish_training(
                baseline.DIRECTORY, training, training_started)
            say("baseline: model ready")

        await proxy.start(proxy_port)
        watch = RedisWatch(redis_server.url).start()
        try:
            await profile_conversation(profiled_settings.rasa_url, stack.settings.rasa_token,
                                       loss_report(0), proxy, watch)  # warm-up
            proxy.calls.clear()
            watch.commands.clear()
            profile = await profile_conversation(
                profiled_settings.rasa_url, stack.settings.rasa_token, loss_report(0), proxy,
                watch)
            results["py_spy"] = await sample_rasa(profiled, profiled_settings, work)
        finally:
            watch.stop()
            await proxy.stop()
            profiled.stop()
        results["profile"] = [vars(turn) for turn in profile]
        say("profile: one conversation through the counting proxy done")

        processes = server_processes(stack, redis_server)
        results["memory_idle_mib"] = machine.resident_mib(processes)
        expected = await calibrate(stack.rasa_url, loss_report, [1, 2])
        results["expected_replies"] = expected
        results["turns_to_filing"] = await turns_to_filing(stack.rasa_url)
        say("turns to a filed report: " + ", ".join(
            f"{row['language']} {row['style']} {row['turns']}"
            + ("" if row["filed"] else " (not filed)") for row in results["turns_to_filing"]))
        servers = processes
        memory_after: dict[str, dict[str, float]] = {}
        index = 10
        levels: list[Level] = []
        ledger = ReportLedger(stack.settings)
        for channel in args.channels:
            def after_level(level: Level, channel: str = channel) -> None:
                ledger.check(level)
                if level.concurrency == 32:
                    memory_after[channel] = machine.resident_mib(processes)

            levels += await channel_levels(channel, args.levels, stack.rasa_url, loss_report,
                                           expected, servers, "stack", index, after_level,
                                           transport=args.webchat_transport)
            index += sum(args.levels)
            # The targets' level: 32 guardians who pause between messages, as people do
            # (back to back, 32 of them at p95 < 250 ms would need 128 turns/s).
            levels += await channel_levels(channel, [report.TARGET_N], stack.rasa_url,
                                           loss_report, expected, servers, "stack-paced",
                                           index, ledger.check, report.THINK_S,
                                           transport=args.webchat_transport)
            index += report.TARGET_N
        # Greeting-level turns on our stack, for a like-for-like ratio with the bare bot.
        greet_expected = await calibrate(stack.rasa_url, greeting_only, [0])
        for channel in args.channels:
            levels += await channel_levels(channel, args.levels, stack.rasa_url, greeting_only,
                                           greet_expected, servers, "stack-greeting", index,
                                           lambda level: None, transport=args.webchat_transport)
        if second is not None:
            index += sum(args.levels)
            levels += await cluster_levels(args, work, stack, second, processes, expected,
                                           ledger, index, results)
        results["levels"] = [level.as_dict() for level in levels]
        results["memory_after_32_mib"] = memory_after
    finally:
        if training is not None and training.poll() is None:
            training.terminate()
        profiled.stop()
        if second is not None:
            second.stop()
        stack.stop()
        redis_server.stop()


async def cluster_levels(args: argparse.Namespace, work: Path, stack: Stack, second: Process,
                         processes: dict[str, psutil.Process], expected: dict[str, list[int]],
                         ledger: ReportLedger, index: int,
                         results: dict[str, Any]) -> list[Level]:
    """deploy/ on this machine: nginx (TLS; REST to the less busy Rasa, web chat sticky by
    client address) in front of both Rasas, which share the action server, Redis and card
    service."""
    assert second.popen is not None
    # The second Rasa has answered nothing yet: its first turns pay for tracing the model.
    await calibrate(f"http://127.0.0.1:{second.env['RASA_PORT']}", loss_report, [7, 8])
    ledger.snapshot()  # the warm-up's two reports are not the levels'
    nginx = Nginx(work / "nginx", [stack.settings.rasa_port, int(second.env["RASA_PORT"])],
                  [stack.settings.actions_port] * 2).start()
    try:
        assert nginx.process.popen is not None
        servers = {**processes, "rasa-2": psutil.Process(second.popen.pid),
                   "nginx": psutil.Process(nginx.process.popen.pid)}
        context = ssl.create_default_context(cafile=str(nginx.certificate))
        say(f"cluster: nginx {nginx.https_url} in front of two Rasas")
        levels: list[Level] = []
        for channel in args.channels:
            levels += await channel_levels(channel, args.levels, nginx.https_url, loss_report,
                                           expected, servers, "cluster", index, ledger.check,
                                           0.0, context, spread_sources=True,
                                           transport=args.webchat_transport)
            index += sum(args.levels)
            levels += await channel_levels(channel, [report.TARGET_N], nginx.https_url,
                                           loss_report, expected, servers, "cluster-paced",
                                           index, ledger.check, report.THINK_S, context,
                                           spread_sources=True,
                                           transport=args.webchat_transport)
            index += report.TARGET_N
        results["memory_cluster_mib"] = machine.resident_mib(servers)
        return levels
    finally:
        nginx.stop()


async def bench_baseline(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    port = free_port()
    server = Process("rasa-baseline", baseline.server_command(port), {
        **{k: v for k, v in os.environ.items() if not k.startswith("RASA_")},
    }, work)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            answer = requests.get(f"{url}/status", params={"token": "bench-baseline"}, timeout=2)
            return answer.ok and bool(answer.json().get("model_id"))
        except requests.RequestException:
            return False

    server.start()
    try:
        wait_for(ready, 600, "baseline rasa")
        assert server.popen is not None
        process = psutil.Process(server.popen.pid)
        results["memory_baseline_mib"] = machine.resident_mib({"rasa (rasa init bot)": process})
        expected = await calibrate(url, moodbot, [0])
        levels = []
        for channel in args.channels:
            levels += await channel_levels(channel, args.levels, url, moodbot, expected,
                                           {"rasa": process}, "baseline", 0,
                                           lambda level: None, transport=args.webchat_transport)
        results["levels"] += [level.as_dict() for level in levels]
    finally:
        server.stop()


async def bench_ab(args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    await ab.bench(work, results, n=args.ab_n, rounds=args.ab_rounds, channels=args.channels,
                   env={"DATA_ENCRYPTION_KEY": "bench-data-encryption-key-0123456789",
                        **dict(item.split("=", 1) for item in args.env)},
                   transport=args.webchat_transport, calibrate=calibrate, ledger=ReportLedger,
                   say=say)
    for row in report.ab_rows(results["ab"]):
        stack, rasa = row["stack"], row["rasa"]
        say(f"ab {row['what']} ({row['base']} -> {row['changed']}), {row['channel']}: "
            f"{stack['base_ms']:.2f} -> {stack['changed_ms']:.2f} ms CPU/turn, "
            f"{stack['diff_ms']:+.2f} ms ({stack['diff_pct']:+.1f}%, per round "
            f"{stack['paired_median_pct']:+.1f}%)"
            + (f"; rasa {rasa['diff_ms']:+.2f} ms ({rasa['diff_pct']:+.1f}%)" if rasa else "")
            + f"; limit +{row['limit_pct']:g}%: {'within' if row['within'] else 'OVER'}")
    for name, arm in results["ab"]["arms"].items():
        if not arm["checks"]["ok"]:
            say(f"ab: arm {name} is not what it is named: {arm['checks']}")


def main_ab(args: argparse.Namespace) -> int:
    """`--only ab`: the A/B rounds alone; their section printed and written apart."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine.describe(), "core_speed_ms": [machine.core_speed_ms()],
        "channels": args.channels, "env": args.env, "only": "ab",
    }
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
        asyncio.run(bench_ab(args, Path(tmp), results))
    results["core_speed_ms"].append(machine.core_speed_ms())
    results["total_s"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2),
                                      encoding="utf-8")
    section = "\n".join(report.ab_section(results)) + "\n"
    Path(args.markdown).write_text(section, encoding="utf-8")
    print(section, flush=True)
    say(f"ab done in {results['total_s']} s: {args.markdown}, {out / 'results.json'}")
    return 0 if all(arm["checks"]["ok"] for arm in results["ab"]["arms"].values()) else 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only == "ab":
        return main_ab(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine.describe(),
        "core_speed_ms": [machine.core_speed_ms()],
        "levels_requested": args.levels,
        "webchat_transport": args.webchat_transport,
        "channels": args.channels,
        "env": args.env,
    }
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        asyncio.run(bench_stack(args, work, results))
        if not args.no_ab:
            # Its own three stacks, after the main one has stopped: the cores are theirs.
            asyncio.run(bench_ab(args, work, results))
        if not args.no_baseline:
            asyncio.run(bench_baseline(args, work, results))
        if not args.no_nlu:
            # Last, each training alone on the machine: its time is not shared with anything.
            results["nlu_compare"] = nlu_compare.compare(work, say)
            results["nlu"] = results["nlu_compare"]["ours"]["eval"]
        elif args.nlu_from:
            earlier = json.loads(Path(args.nlu_from).read_text(encoding="utf-8"))
            if earlier.get("nlu_compare"):
                results["nlu_compare"] = {**earlier["nlu_compare"],
                                          "carried_from": earlier.get("date", "?")}
                results["nlu"] = earlier.get("nlu")
    results["core_speed_ms"].append(machine.core_speed_ms())
    results["total_s"] = round(time.monotonic() - started, 1)
    (out / "results.json").write_text(json.dumps(results, ensure_ascii=False, indent=2),
                                      encoding="utf-8")
    report.plots(results, out)
    Path(args.markdown).write_text(report.markdown(results, out, Path(args.markdown).parent),
                                   encoding="utf-8")
    met = report.targets(results).get("met")
    say(f"done in {results['total_s']} s: {args.markdown}, {out}; targets met: "
        f"{'yes' if met else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
