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
# The A/B section's arms (tools/bench/ab.py) and what is compared: (what, base, changed,
# allowed % more CPU per turn, whose limit).
AB_OFF, AB_ON, AB_NO_HOOK = "off", "on", "no-hook"
AB_COMPARISONS = (
    ("metrics", AB_OFF, AB_ON, 5.0, "issue 19"),
    ("handoff hook", AB_NO_HOOK, AB_ON, 10.0, "the project's rule for any change"),
)

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


def ab_per_round(ab: dict[str, Any], arm: str, channel: str,
                 process: str | None = None) -> dict[int, float]:
    """CPU ms per turn of `arm` in each round (`process` alone, else every process of its
    stack); channel "both" pools both channels' turns. A level with an error is left out
    (its conversations stopped early, on cheaper turns), and its round with it.

    >>> ab = {"levels": [
    ...     {"round": 0, "arm": "on", "channel": "rest", "turns": 10, "errors": 0,
    ...      "server_cpu_ms_per_turn": 20.0, "cpu_ms_per_turn_by_process": {"rasa": 15.0}},
    ...     {"round": 0, "arm": "on", "channel": "socketio", "turns": 30, "errors": 0,
    ...      "server_cpu_ms_per_turn": 16.0, "cpu_ms_per_turn_by_process": {"rasa": 11.0}},
    ...     {"round": 1, "arm": "on", "channel": "rest", "turns": 5, "errors": 1,
    ...      "server_cpu_ms_per_turn": 9.0, "cpu_ms_per_turn_by_process": {"rasa": 7.0}}]}
    >>> ab_per_round(ab, "on", "both"), ab_per_round(ab, "on", "rest", "rasa")
    ({0: 17.0}, {0: 15.0})
    """
    found: dict[int, float] = {}
    for number in sorted({lv["round"] for lv in ab["levels"]}):
        rows = [lv for lv in ab["levels"] if lv["arm"] == arm and lv["round"] == number
                and channel in ("both", lv["channel"])]
        turns = sum(lv["turns"] for lv in rows)
        if not rows or not turns or any(lv["errors"] for lv in rows):
            continue
        used = sum((lv["cpu_ms_per_turn_by_process"].get(process, 0.0) if process
                    else lv["server_cpu_ms_per_turn"]) * lv["turns"] for lv in rows)
        found[number] = used / turns
    return found


def ab_compare(ab: dict[str, Any], base: str, changed: str, channel: str,
               process: str | None = None) -> dict[str, Any] | None:
    """`changed` against `base`: the medians over rounds, their difference (ms and %), and
    the per-round differences of the two arms run side by side (the noise shows in them).

    >>> def level(r, arm, ms):
    ...     return {"round": r, "arm": arm, "channel": "rest", "turns": 100, "errors": 0,
    ...             "server_cpu_ms_per_turn": ms, "cpu_ms_per_turn_by_process": {}}
    >>> ab = {"levels": [level(0, "off", 20.0), level(0, "on", 21.0),
    ...                  level(1, "off", 22.0), level(1, "on", 22.0),
    ...                  level(2, "off", 18.0), level(2, "on", 19.8)]}
    >>> c = ab_compare(ab, "off", "on", "rest")
    >>> c["base_ms"], c["changed_ms"], round(c["diff_ms"], 2), round(c["diff_pct"], 2)
    (20.0, 21.0, 1.0, 5.0)
    >>> [round(x, 1) for x in c["paired_pct"]], round(c["estimate_pct"], 1)
    ([5.0, 0.0, 10.0], 5.0)
    """
    a = ab_per_round(ab, base, channel, process)
    b = ab_per_round(ab, changed, channel, process)
    both = sorted(set(a) & set(b))
    if not both:
        return None
    base_ms = statistics.median(a[r] for r in both)
    changed_ms = statistics.median(b[r] for r in both)
    paired = [100 * (b[r] - a[r]) / a[r] for r in both if a[r]]
    diff_pct = 100 * (changed_ms - base_ms) / base_ms if base_ms else 0.0
    paired_median = statistics.median(paired) if paired else diff_pct
    return {"base_ms": base_ms, "changed_ms": changed_ms, "diff_ms": changed_ms - base_ms,
            "diff_pct": diff_pct, "paired_pct": paired, "paired_median_pct": paired_median,
            # The larger of the two estimates is the one held to the limit.
            "estimate_pct": max(diff_pct, paired_median), "rounds": len(both)}


def ab_redis(ab: dict[str, Any], arm: str, channel: str) -> dict[str, float]:
    """Redis commands per turn of `arm` on `channel`, each the median over its levels."""
    rows = [lv.get("redis_calls_per_turn") or {} for lv in ab["levels"]
            if lv["arm"] == arm and lv["channel"] == channel and not lv["errors"]]
    names = sorted({name for row in rows for name in row})
    return {name: statistics.median(row.get(name, 0.0) for row in rows) for name in names}


def ab_rows(ab: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per comparison and channel (each channel, then both), whole stack and Rasa."""
    rows = []
    for what, base, changed, limit, whose in AB_COMPARISONS:
        for channel in [*ab["channels"], "both"]:
            stack = ab_compare(ab, base, changed, channel)
            if stack is None:
                continue
            rows.append({"what": what, "base": base, "changed": changed, "channel": channel,
                         "limit_pct": limit, "whose": whose, "stack": stack,
                         "rasa": ab_compare(ab, base, changed, channel, "rasa"),
                         "within": stack["estimate_pct"] <= limit})
    return rows


def _pct(value: float) -> str:
    return f"{value:+.1f}%"


def ab_section(results: dict[str, Any]) -> list[str]:
    """BENCHMARKS.md's "Metrics and handoff cost" from the A/B rounds (tools/bench/ab.py)."""
    ab = results.get("ab")
    lines = ["## Metrics and handoff cost (issue 19)", ""]
    if not ab:
        return [*lines, "(not run: `--no-ab`)"]
    errored = sum(1 for lv in ab["levels"] if lv["errors"])
    lines += [
        f"Three stacks started from the Procfile as `make run` starts them, each on a Redis "
        f"of its own, up side by side: `{AB_OFF}` (METRICS=off: no /metrics route and no "
        f"counting in Rasa, the action server or the card service), `{AB_ON}` (what "
        f"`make run` serves: metrics and the live-handoff hook) and `{AB_NO_HOOK}` (metrics "
        "on, Rasa given credentials.yml without the handoff channel, so the handoff desk "
        "is never installed and the hook every channel calls on each message is one test "
        "of a module global; HANDOFF_TOKEN does not turn the hook off: the desk is there "
        "with or without it). Each round sends the same load to each stack in turn, "
        f"channel by channel: {ab['n']} guardians at once, one whole conversation each "
        "(13 turns, as the load levels above), the web chat over "
        f"{ab.get('transport', 'websocket')}; the stacks' order turns round each round, so "
        f"every arm runs first, second and last alike. {ab['rounds']} rounds. Server CPU is "
        "every process of the arm's stack with its Redis; the figures are medians over the "
        "rounds, the per-round column the two arms run one after the other (its spread is "
        "the noise of the measure); the larger of the two estimates, difference of medians "
        "or median of the per-round differences, is held to the limit. Nobody is handed "
        "off: this is what the hook costs a turn that stays with the assistant."
        + (f" {errored} level(s) with an error are left out, with their round."
           if errored else ""),
        "",
        "| what | channel | without, ms/turn | with, ms/turn | difference | Rasa alone: "
        "without, with, difference | per round: median (range) | limit | |",
        "| --- | --- | ---: | ---: | ---: | --- | --- | ---: | --- |",
    ]
    rows = ab_rows(ab)
    for row in rows:
        s, r = row["stack"], row["rasa"]
        rasa = (f"{r['base_ms']:.1f}, {r['changed_ms']:.1f}, {_pct(r['diff_pct'])}"
                if r else "-")
        paired = s["paired_pct"]
        lines.append(
            f"| {row['what']} (`{row['base']}` to `{row['changed']}`) | {row['channel']} | "
            f"{s['base_ms']:.1f} | {s['changed_ms']:.1f} | {s['diff_ms']:+.2f} ms, "
            f"{_pct(s['diff_pct'])} | {rasa} | {_pct(statistics.median(paired))} "
            f"({_pct(min(paired))} to {_pct(max(paired))}) | +{row['limit_pct']:g}% "
            f"({row['whose']}) | {'within' if row['within'] else '**over**'} |")
    for row in rows:
        if row["channel"] == "both":
            s = row["stack"]
            lines += ["", f"- {row['what'].capitalize()}: {s['diff_ms']:+.2f} ms of server "
                      f"CPU per turn ({_pct(s['diff_pct'])}; per round "
                      f"{_pct(s['paired_median_pct'])}) over both channels, "
                      f"{'within' if row['within'] else '**over**'} the limit of "
                      f"+{row['limit_pct']:g}% ({row['whose']})."]
    others = [lv["other_load_pct"] for lv in ab["levels"]]
    if others:
        lines += ["", f"Anything else on the machine (the idle arms included) used a median "
                  f"{statistics.median(others):.0f}% of both cores during the levels (at most "
                  f"{max(others):.0f}%)."]
    lines += ["", "Redis commands per turn (INFO commandstats of each arm's Redis, read "
              "before and after each level; medians over the rounds). The hook's cost in "
              "calls, whatever the CPU noise:", "",
              "| channel | " + " | ".join(f"`{arm}`" for arm in ab["arms"])
              + f" | `{AB_ON}` minus `{AB_NO_HOOK}`, by command |",
              "| --- |" + " ---: |" * len(ab["arms"]) + " --- |"]
    for channel in ab["channels"]:
        calls = {arm: ab_redis(ab, arm, channel) for arm in ab["arms"]}
        on, bare = calls.get(AB_ON, {}), calls.get(AB_NO_HOOK, {})
        more = ", ".join(f"{name} {on.get(name, 0) - bare.get(name, 0):+.2f}"
                         for name in sorted(set(on) | set(bare))
                         if abs(on.get(name, 0) - bare.get(name, 0)) >= 0.05) or "none"
        lines.append(f"| {channel} | "
                     + " | ".join(f"{sum(calls[arm].values()):.1f}" for arm in ab["arms"])
                     + f" | {more} |")
    lines += ["", "Each arm checked after its rounds (GET /metrics of Rasa, the action server "
              "and the card service, where no page is 404, or 500 from the action server, "
              "which answers any unknown route so; GET /webhooks/handoff/ of Rasa; turns Rasa "
              "counted against turns sent):", "",
              "| arm | /metrics (rasa, actions, card) | handoff API | turns sent | "
              "turns counted | as named | resident MiB |",
              "| --- | --- | --- | ---: | ---: | --- | ---: |"]
    for arm, found in ab["arms"].items():
        check = found["checks"]
        statuses = ", ".join(str(v) for v in check["metrics_status"].values())
        counted = "-" if check["turns_counted"] is None else f"{check['turns_counted']:.0f}"
        lines.append(f"| `{arm}` | {statuses} | {check['handoff_api_status']} | "
                     f"{check['turns_sent']} | {counted} | "
                     f"{'yes' if check['ok'] else '**no**'} | "
                     f"{sum(found.get('memory_mib', {}).values()):.0f} |")
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
    lines += ["", *ab_section(results)]
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
