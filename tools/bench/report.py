"""BENCHMARKS.md and the plots, written from one run's results (nothing typed in by hand
except the figures marked as measured by a separate run)."""

from __future__ import annotations

import os
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

TARGET_N = 32
TARGET_P95_MS = 250.0
TARGET_TURNS_PER_S = 40.0
# A guardian reads a reply and types the next answer: about one message every 15 s.
SECONDS_BETWEEN_MESSAGES = 15.0
# The targets' level pauses this long on average between a reply and the next message
# (0.5 to 1.5 times it, tools/bench/clients.py): far faster than anyone types, yet 32
# guardians then offer about 50 turns/s, above the target of 40.
THINK_S = 0.5
# The topologies, as measured: `make run` (one Rasa) and deploy/ on this machine.
TOPOLOGIES = {"stack": "one Rasa (make run)", "cluster": "nginx + two Rasas (deploy/)"}

def levels(results: dict[str, Any], target: str, channel: str) -> list[dict[str, Any]]:
    return sorted((lv for lv in results.get("levels", [])
                   if lv["target"] == target and lv["channel"] == channel),
                  key=lambda lv: lv["concurrency"])


def level_at(results: dict[str, Any], target: str, channel: str, n: int) -> dict | None:
    return next((lv for lv in levels(results, target, channel) if lv["concurrency"] == n), None)


def target_level(results: dict[str, Any], channel: str) -> dict | None:
    """The production shape on this machine when it was measured, else `make run`'s."""
    return (level_at(results, "cluster-paced", channel, TARGET_N)
            or level_at(results, "stack-paced", channel, TARGET_N)
            or level_at(results, "stack", channel, TARGET_N))


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """Per channel: the 32-guardian paced level against the issue's targets."""
    verdicts: dict[str, Any] = {}
    for channel in results.get("channels", []):
        lv = target_level(results, channel)
        if lv is None:
            continue
        verdicts[channel] = {
            "p95": lv["p95_ms"] < TARGET_P95_MS,
            "throughput": lv["turns_per_s"] >= TARGET_TURNS_PER_S,
            "errors": lv["errors"] == 0,
        }
    verdicts["met"] = bool(verdicts) and all(
        all(v.values()) for k, v in verdicts.items() if k != "met")
    return verdicts


def plots(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    channels = results.get("channels", [])
    fig, axes = plt.subplots(1, len(channels) or 1, figsize=(6 * max(len(channels), 1), 4),
                             squeeze=False)
    for ax, channel in zip(axes[0], channels, strict=False):
        for target, style in (("stack", "-"), ("cluster", "--"), ("baseline", ":")):
            data = levels(results, target, channel)
            if not data:
                continue
            ns = [lv["concurrency"] for lv in data]
            for key, marker in (("p50_ms", "o"), ("p95_ms", "s"), ("p99_ms", "^")):
                ax.plot(ns, [lv[key] for lv in data], style, marker=marker,
                        label=f"{target} {key[:3]}")
        ax.axhline(TARGET_P95_MS, color="red", linewidth=0.8, label="target p95")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("concurrent guardians")
        ax.set_ylabel("per-turn latency (ms)")
        ax.set_title(f"latency, {channel}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "latency.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for channel in channels:
        for target, style in (("stack", "-"), ("cluster", "--"), ("baseline", ":")):
            data = levels(results, target, channel)
            if data:
                ax.plot([lv["concurrency"] for lv in data], [lv["turns_per_s"] for lv in data],
                        style, marker="o", label=f"{target} {channel}")
    ax.axhline(TARGET_TURNS_PER_S, color="red", linewidth=0.8, label="target")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent guardians")
    ax.set_ylabel("turns per second")
    ax.set_title("throughput")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "throughput.png", dpi=110)
    plt.close(fig)


def _yes(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _load_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["| target | channel | N | finished | turns | errors | p50 ms | p95 ms | p99 ms "
             "| turns/s | server CPU ms/turn | client CPU ms/turn | other load | "
             "one report per conversation |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
             "| ---: | --- |"]
    for lv in rows:
        lines.append(
            f"| {lv['target']} | {lv['channel']} | {lv['concurrency']} | "
            f"{lv['finished']}/{lv['conversations']} | {lv['turns']} | {lv['errors']} | "
            f"{lv['p50_ms']:.0f} | {lv['p95_ms']:.0f} | {lv['p99_ms']:.0f} | "
            f"{lv['turns_per_s']:.1f} | {lv['server_cpu_ms_per_turn']:.0f} | "
            f"{lv['load_generator_cpu_ms_per_turn']:.0f} | {lv['other_load_pct']:.0f}% | "
            f"{lv['reports_check'] or '-'} |")
    return lines


def _profile_section(profile: list[dict[str, Any]]) -> list[str]:
    if not profile:
        return ["(not profiled in this run)"]
    lines = ["| turn | latency ms | NLU parse ms | action-server calls | in actions ms "
             "| Redis commands (by sender) |",
             "| --- | ---: | ---: | --- | ---: | --- |"]
    for turn in profile:
        redis_calls = ", ".join(f"{owner} {count}" for owner, count in
                                sorted(turn["redis"].items())) or "-"
        lines.append(
            f"| {turn['message'][:40]} | {turn['latency_ms']:.0f} | "
            f"{turn['nlu_parse_ms']:.0f} | {len(turn['action_calls'])}: "
            f"{', '.join(turn['action_calls']) or '-'} | {turn['action_ms']:.0f} | "
            f"{redis_calls} |")
    n = len(profile)
    total = sum(t["latency_ms"] for t in profile)
    nlu = sum(t["nlu_parse_ms"] for t in profile)
    actions = sum(t["action_ms"] for t in profile)
    calls = sum(len(t["action_calls"]) for t in profile)
    redis_total: Counter[str] = Counter()
    for turn in profile:
        redis_total.update(turn["redis"])
    per_owner = ", ".join(f"{owner} {count / n:.1f}" for owner, count in
                          sorted(redis_total.items()))
    lines += [
        "",
        f"Per turn on average, with one guardian alone: {total / n:.0f} ms end to end, of "
        f"which NLU (the same message parsed alone) {nlu / n:.0f} ms "
        f"({nlu / total:.0%}), the action server {actions / n:.0f} ms ({actions / total:.0%}) "
        f"over {calls / n:.1f} HTTP calls, and the rest ({(total - nlu - actions) / n:.0f} ms, "
        f"{(total - nlu - actions) / total:.0%}) is Rasa itself: policies, the tracker "
        f"loaded and saved, locks, the channel. Redis commands per turn by sender: "
        f"{per_owner}.",
    ]
    if n >= 4:
        early = statistics.fmean(t["latency_ms"] for t in profile[:2])
        late = statistics.fmean(t["latency_ms"] for t in profile[-2:])
        lines += ["", f"A turn costs more as the conversation grows: the first two turns "
                  f"took {early:.0f} ms on average, the last two {late:.0f} ms (the whole "
                  "tracker is read, replayed and written back on every message, and more "
                  "predictions run per turn once the form is active)."]
    return lines


def _sampling_section(sampled: dict[str, Any] | None) -> list[str]:
    if not sampled or not sampled.get("samples"):
        return ["", "(py-spy not installed: no sampling profile in this run.)"]
    samples = sampled["samples"]
    total = sum(samples.values())
    lines = ["", f"Sampled with py-spy (250 Hz, non-blocking) over {sampled['conversations']} "
             f"more conversations (REST, nothing else) on the same Rasa process, {total} "
             "samples of Rasa busy (the idle event loop left out), attributed to the innermost "
             "Rasa part on the stack:", "",
             "| part of Rasa | share of Rasa's busy time |", "| --- | ---: |"]
    lines += [f"| {name} | {count / total:.0%} |" for name, count in samples.items()]
    if sampled.get("inclusive"):
        lines += ["", "The functions on the most samples (inclusive: with everything they call; "
                  "collapsed stacks in `results/bench/py-spy-rasa.txt`, not kept in git):", "",
                  "| function | share of samples |", "| --- | ---: |"]
        lines += [f"| `{name}` | {share:.0%} |" for name, share in sampled["inclusive"]]
    return lines


def _f1(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _languages(evaluation: dict[str, Any]) -> list[str]:
    """The per-language reports of a tools/nlu_eval.py result (it also names the model)."""
    return sorted(k for k, v in evaluation.items() if isinstance(v, dict) and "intent_f1" in v)


def _nlu_section(results: dict[str, Any]) -> list[str]:
    """Ours against Rasa's default: trained in this run, each alone, same data and files."""
    compared = results.get("nlu_compare") or {}
    if not compared:
        return ["(not run: `--no-nlu`)"]
    ours, default = compared["ours"], compared["default"]
    lines = []
    if compared.get("carried_from"):
        lines += [f"Not trained in this run (`--no-nlu`): the figures of the run of "
                  f"{compared['carried_from']}, for the training data of that day.", ""]
    lines += [
        "Our pipeline (`config.yml`: Jieba, sparse features, DIET at 30 epochs) and Rasa's "
        "default (what `rasa init` trains with: WhitespaceTokenizer, so `language: en`, DIET "
        "and ResponseSelector at 100 epochs), both with seed 42, trained from scratch on "
        "`data/nlu` in this run, one after the other with nothing else running, and "
        "evaluated on the same held-out files by `tools/nlu_eval.py`.",
        "",
        "| language | accuracy, ours | accuracy, default | intent macro-F1, ours "
        "| intent macro-F1, default |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for lang in _languages(ours["eval"]):
        mine, theirs = ours["eval"][lang], default["eval"].get(lang, {})
        lines.append(
            f"| {lang} | {mine['intent_accuracy']:.3f} | "
            f"{theirs.get('intent_accuracy', 0):.3f} | {mine['intent_macro_f1']:.3f} | "
            f"{theirs.get('intent_macro_f1', 0):.3f} |")
    lines += ["", "Entity F1 on the held-out files (per extractor that found entities):", ""]
    for name, label in (("ours", "ours"), ("default", "Rasa's default")):
        for lang in _languages(compared[name]["eval"]):
            for extractor, scores in (compared[name]["eval"][lang].get("entity_f1")
                                      or {}).items():
                shown = ", ".join(f"{entity} {_f1(f1)}" for entity, f1 in scores.items())
                lines.append(f"- {label}, {lang}, {extractor}: {shown}")
    lines += _field_section(ours.get("field"), default.get("field"))
    lines += ["", "## Training time", "",
              "| pipeline | wall s | CPU s |", "| --- | ---: | ---: |",
              f"| ours (NLU) | {ours['training']['wall_s']:.0f} | "
              f"{ours['training']['cpu_s']:.0f} |",
              f"| Rasa's default (NLU) | {default['training']['wall_s']:.0f} | "
              f"{default['training']['cpu_s']:.0f} |"]
    if results.get("baseline_training_s"):
        lines.append(f"| the baseline `rasa init` bot (NLU and TED), while the stack was "
                     f"starting (shared cores) | {results['baseline_training_s']:.0f} | - |")
    lines += ["", "`make train` adds the dialogue policies (rules and memorised stories, a few "
              "seconds) to our NLU training."]
    return lines


def _field_section(ours: dict[str, Any] | None, default: dict[str, Any] | None) -> list[str]:
    """The blind field set: per language, per category, and the confusions left."""
    if not ours:
        return []
    default = default or {"accuracy": {}, "by_category": {}}
    lines = ["", "## NLU: the blind field set (tests/nlu/field, written apart, never trained on)",
             "", "Intent accuracy on messages as guardians type them on phones, written by "
             "someone who never saw our training data; `make test` gates it at 0.95 per "
             "language.", "",
             "| language | messages | accuracy, ours | accuracy, default |",
             "| --- | ---: | ---: | ---: |"]
    for lang in sorted(ours["accuracy"]):
        lines.append(f"| {lang} | {ours['count'][lang]} | {ours['accuracy'][lang]:.3f} | "
                     f"{default['accuracy'].get(lang, 0):.3f} |")
    lines += ["", "| category | messages | ours | default |", "| --- | ---: | ---: | ---: |"]
    for category, row in sorted(ours["by_category"].items()):
        theirs = default["by_category"].get(category) or {}
        lines.append(f"| {category} | {row['n']} | {row['accuracy']:.3f} | "
                     f"{theirs.get('accuracy', 0):.3f} |")
    left = [f"{c['language']} {c['intent']} -> {c['predicted']} ({c['count']})"
            for c in ours["confusions"][:12]]
    lines += ["", "Confusions left (ours; `nlu_fallback` is \"say it again\" with the "
              "choices, never a wrong answer): " + ("; ".join(left) or "none") + "."]
    return lines


def _turns_section(rows: list[dict[str, Any]] | None) -> list[str]:
    if not rows:
        return []
    lines = ["", "## Turns to a filed report", "",
             "Messages a guardian sends from the loss to the reference, over REST on the "
             "running stack (tools/bench/conversations.py).", "",
             "| how the details are given | language | turns | filed |",
             "| --- | --- | ---: | --- |"]
    for row in rows:
        lines.append(f"| {row['style']} | {row['language']} | {row['turns']} | "
                     f"{'yes' if row['filed'] else 'no'} |")
    return lines


def _capacity(results: dict[str, Any]) -> list[str]:
    cores = int(results["machine"].get("cpus") or 1)
    lines = []
    for topology, channel in ((t, c) for t in TOPOLOGIES for c in results.get("channels", [])):
        data = [lv for lv in levels(results, topology, channel)
                if lv["turns"] and lv["concurrency"] > 1] or levels(results, topology, channel)
        if not data or not data[0]["turns"]:
            continue
        total = statistics.median(lv["server_cpu_ms_per_turn"] for lv in data)
        # Every Rasa of the topology ("rasa", "rasa-2"), each busy with its share of turns.
        names = [name for name in data[0]["cpu_ms_per_turn_by_process"] if name.startswith("rasa")]
        rasa = statistics.median(sum(lv["cpu_ms_per_turn_by_process"].get(name, 0.0)
                                     for name in names) for lv in data)
        best = max(data, key=lambda lv: lv["turns_per_s"])
        by_process = {name: statistics.median(lv["cpu_ms_per_turn_by_process"].get(name, 0.0)
                                              for lv in data)
                      for name in data[0]["cpu_ms_per_turn_by_process"]}
        shares = ", ".join(f"{name} {ms:.0f}" for name, ms in by_process.items())
        lines.append(
            f"- {TOPOLOGIES[topology]}, {channel}: {total:.0f} ms of CPU per turn ({shares}; "
            f"medians over the levels with N > 1). A Rasa process runs on one event loop and "
            f"spends {rasa:.0f} ms of it per turn, so each Rasa instance tops out near "
            f"{1000 / rasa:.0f} turns/s ({len(names)} here: {len(names) * 1000 / rasa:.0f}), "
            f"and {cores} cores near {cores * 1000 / total:.0f} turns/s for the whole stack; "
            f"the best measured was {best['turns_per_s']:.1f} turns/s at N={best['concurrency']} "
            "(the load generator shares the cores)." if rasa else
            f"- {TOPOLOGIES[topology]}, {channel}: {total:.0f} ms of CPU per turn.")
    return lines


def markdown(results: dict[str, Any], out: Path, root: Path) -> str:
    m = results["machine"]
    rel = os.path.relpath(out, root)
    verdict = targets(results)
    transport = ("a websocket, what the widget upgrades to after its first long poll"
                 if results.get("webchat_transport", "polling") == "websocket"
                 else "long polling throughout")
    lines = [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`tools/bench/run.py`) on {results['date']}, from one run "
        f"of {results.get('total_s', 0):.0f} s; raw figures in `{rel}/results.json`. Rerun "
        "it to refresh every number below except those marked as measured separately.",
        "",
        "## Machine",
        "",
        f"- {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB memory, {m['os']}",
        f"- Python {m['python']}, Rasa {m['rasa']}, rasa-sdk {m['rasa-sdk']}, "
        f"python-socketio {m['python-socketio']}, aiohttp {m['aiohttp']} (load generator)",
        *([f"- Speed of one core: a fixed pure-Python workload took "
           f"{' ms at the start and '.join(str(ms) for ms in results['core_speed_ms'])} ms "
           "at the end of the run (`tools/bench/machine.py`). This virtual machine's speed "
           "for the load below varies from hour to hour in a way that figure does not "
           "catch: on 2026-12-02 the same code and the bare Rasa baseline ran twice as fast "
           "at one hour as at another with the same figure. Compare our stack with the "
           "baseline of the same run."]
          if results.get("core_speed_ms") else []),
        *([f"- Environment overrides for the stack: `{' '.join(results['env'])}`"]
          if results.get("env") else []),
        "- Everything on this one machine over 127.0.0.1: Redis (AOF, appendfsync always), "
        "card service, one action server, the Rasa servers (one Sanic worker each), and the "
        "load generator (one asyncio process) sharing the same cores. Two topologies: "
        "`stack`, as `make run` starts it (one Rasa, clients straight to it); `cluster`, as "
        "deploy/ serves it on this machine (Debian's nginx with deploy/nginx.conf, TLS, each "
        "REST turn to the Rasa with fewer in progress and the web chat sticky by client "
        "address, in front of two Rasas; each web-chat guardian has a loopback address of its "
        "own, as separate phones would). A Rasa process uses one core at most: the second "
        "Rasa is how this machine's second core serves guardians.",
        "",
        "## How the load is made",
        "",
        "Each level starts N simulated guardians at once; each holds one whole conversation "
        "and the level ends when all are done (N conversations, bounded by count). A "
        "conversation is 13 turns: a greeting, the report offer and its acceptance, each of "
        "the seven form slots in its own message (child's name and ID number, guardian's "
        "name and ID number, relationship, mobile, city), the confirmation that files the "
        "report, then a status check (asking for the progress of \"my report\", then the "
        "guardian's ID number; the reply must carry the reference just filed). Even "
        "guardians write English, odd ones Chinese; every guardian has its own valid ID "
        "numbers. A turn's latency runs from sending the message to the last reply of that "
        "turn (socket.io: the server's acknowledgement and every expected `bot_uttered`). "
        f"The web chat's guardians speak socket.io over {transport} (`--webchat-transport`). "
        "An error is a failed request, a missing or wrong reply (no reference when filing, "
        "the status without the reference), or a card-service count that is not exactly "
        "one new report per finished conversation (checked after each level through the "
        "staff API and the card service's report index). Turns per second count completed "
        "turns over the level's wall time. Server CPU is every process of the stack (or the "
        "baseline's Rasa); client CPU is the load generator; other load is the share of "
        "both cores used by anything else on the machine during the level.",
        "",
        "## Targets (issue 6): 32 concurrent guardians, p95 < 250 ms, >= 40 turns/s, no error",
        "",
        f"Measured on the `cluster-paced` level (`stack-paced` when the cluster was not run): "
        f"{TARGET_N} guardians, each sending its first message within {THINK_S:g} s of the "
        f"start and each next one {0.5 * THINK_S:g} to {1.5 * THINK_S:g} s (seeded random) "
        f"after the last reply (a person takes seconds; at {THINK_S:g} s on average, 32 "
        f"guardians offer up to {TARGET_N / THINK_S:.0f} turns/s, above the throughput "
        "target). Back to back with no pause, 32 guardians would need "
        f"{TARGET_N / (TARGET_P95_MS / 1000):.0f} turns/s to see 250 ms (Little's law: "
        "concurrency = throughput x latency), so that level, in the load table below, shows "
        "capacity, not the latency a guardian sees.",
        "",
        "| channel | p95 ms | p95 | turns/s | throughput | errors | no error |",
        "| --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for channel in results.get("channels", []):
        lv = target_level(results, channel)
        v = verdict.get(channel)
        if lv and v:
            lines.append(f"| {channel} | {lv['p95_ms']:.0f} | {_yes(v['p95'])} | "
                         f"{lv['turns_per_s']:.1f} | {_yes(v['throughput'])} | {lv['errors']} | "
                         f"{_yes(v['errors'])} |")
    by_turn = [(channel, lv["p95_ms_by_turn"]) for channel in results.get("channels", [])
               if (lv := target_level(results, channel)) and lv.get("p95_ms_by_turn")]
    if by_turn:
        lines += ["", "p95 of each turn of the conversation, in ms (greeting first, status "
                  "check last; the 11th files the report):", ""]
        lines += [f"- {channel}: {', '.join(f'{ms:.0f}' for ms in turns)}"
                  for channel, turns in by_turn]
    lines += ["", f"All targets met: **{'yes' if verdict.get('met') else 'no'}**.", ""]
    lines += _capacity(results)
    lines += ["", "## Load: the whole stack", ""]
    lines += _load_table([lv for target in ("stack", "stack-paced", "cluster", "cluster-paced")
                          for channel in results.get("channels", [])
                          for lv in levels(results, target, channel)])
    lines += ["", f"![latency]({rel}/latency.png)", "", f"![throughput]({rel}/throughput.png)",
              "", "## Baseline: the bare `rasa init` bot", "",
              "Rasa's own template bot (moodbot: no forms, no custom actions, in-memory tracker "
              "store), trained with Rasa's default pipeline and a fixed seed, served by the same "
              "Rasa 3.6.21 over REST and Rasa's socket.io channel, driven by the same harness "
              "with four greeting-level turns per conversation. Our stack runs the same kind of "
              "turns (`stack-greeting`: hello, thanks, are you a bot, bye) for a like-for-like "
              "ratio.", ""]
    baseline_rows = [lv for target in ("baseline", "stack-greeting")
                     for channel in results.get("channels", [])
                     for lv in levels(results, target, channel)]
    lines += _load_table(baseline_rows) if baseline_rows else ["(baseline not run)"]
    ratio_rows = []
    for channel in results.get("channels", []):
        for base in levels(results, "baseline", channel):
            n = base["concurrency"]
            full = level_at(results, "stack", channel, n)
            greet = level_at(results, "stack-greeting", channel, n)
            if not (full and greet and base["p50_ms"] and base["server_cpu_ms_per_turn"]):
                continue
            ratio_rows.append(
                f"| {channel} | {n} | {greet['p50_ms'] / base['p50_ms']:.1f}x | "
                f"{full['p50_ms'] / base['p50_ms']:.1f}x | "
                f"{full['p95_ms'] / base['p95_ms']:.1f}x | "
                f"{greet['server_cpu_ms_per_turn'] / base['server_cpu_ms_per_turn']:.1f}x | "
                f"{full['server_cpu_ms_per_turn'] / base['server_cpu_ms_per_turn']:.1f}x |")
    if ratio_rows:
        lines += ["", "Our per-turn cost as a multiple of Rasa's own (server CPU counts every "
                  "process of our stack against the one Rasa process of the baseline):", "",
                  "| channel | N | greeting p50 | conversation p50 | conversation p95 "
                  "| greeting CPU/turn | conversation CPU/turn |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |", *ratio_rows]
    lines += ["", "## Where the time goes", "",
              "One conversation (English) through a second Rasa process of the same stack whose "
              "action calls pass a counting proxy, with Redis watched by MONITOR and each "
              "message also parsed alone through `POST /model/parse`; nothing else running.",
              ""]
    lines += _profile_section(results.get("profile", []))
    lines += _sampling_section(results.get("py_spy"))
    lines += _turns_section(results.get("turns_to_filing"))
    lines += ["", "## NLU: held-out examples (tests/nlu, never trained on)", ""]
    lines += _nlu_section(results)
    lines += ["", "## Resident memory (RSS, MiB; children included)", ""]
    idle = results.get("memory_idle_mib") or {}
    after = results.get("memory_after_32_mib") or {}
    channels = list(after)
    head = "".join(f" after N=32 {c} |" for c in channels)
    lines += ["| process | idle |" + head, "| --- | ---: |" + " ---: |" * len(channels)]
    for name, size in idle.items():
        cells = "".join(f" {after[c].get(name, 0):.0f} |" for c in channels)
        lines.append(f"| {name} | {size:.0f} |{cells}")
    if idle:
        cells = "".join(f" {sum(after[c].values()):.0f} |" for c in channels)
        lines.append(f"| **total** | {sum(idle.values()):.0f} |{cells}")
    for name, size in (results.get("memory_baseline_mib") or {}).items():
        lines.append(f"| {name} (baseline) | {size:.0f} |" + " |" * len(channels))
    cluster = results.get("memory_cluster_mib") or {}
    if cluster:
        lines += ["", "The cluster after its levels: " + ", ".join(
            f"{name} {size:.0f}" for name, size in cluster.items())
            + f"; total {sum(cluster.values()):.0f} MiB."]
    lines += ["", f"Stack start-up (Redis up to Rasa's model loaded): "
              f"{results.get('startup_s', 0)} s.", ""]
    return "\n".join(lines)
