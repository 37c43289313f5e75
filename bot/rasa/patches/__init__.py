"""Every change this project makes to Rasa's internals: one named, listable entry each.

A `speed` patch gives Rasa's own answers sooner (tests/integration/
test_trained_model_answers.py compares them with every speed patch off); a `behaviour`
patch changes what the bot does. `python -m bot.rasa` installs the enabled ones, in the
order of `PATCHES`, before any Rasa command runs: `tf_threads` must come before TensorFlow
starts; every other entry replaces a function no other entry touches.

RASA_PATCHES_OFF=name,name leaves the named entries out; `all` leaves out every speed entry
(Rasa at its own pace, same answers). Behaviour entries stay on under `all` and go only by
name: each changes what a guardian reads (the language of every reply, the message the
model sees, an answer the form takes, a 503 instead of a reply from a forgotten
conversation) or what its operators see (`metrics`), so leaving one out is a different bot,
not a speed experiment.

Entries name their module; the module, with Rasa under it, is imported only on install, so
listing the entries is quick.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Kind = Literal["speed", "behaviour"]
ALL = "all"


@dataclass(frozen=True)
class Patch:
    """One change: `name` is its module in this package, which exposes `install()`."""

    name: str
    kind: Kind
    # The Rasa functions or classes it changes, as dotted names.
    replaces: tuple[str, ...]
    why: str

    def install(self) -> None:
        """Imports the module and installs it (idempotent)."""
        importlib.import_module(f"{__name__}.{self.name}").install()


PATCHES: tuple[Patch, ...] = (
    Patch("tf_threads", "speed",
          ("rasa.utils.tensorflow.environment.setup_tf_environment",),
          "`rasa run` only: one TensorFlow thread per pool; tiny tensors pay more for a "
          "second thread than it saves"),
    Patch("reply_schema", "speed",
          ("rasa.core.actions.action.RemoteAction._validate_action_result",),
          "action-server replies checked by a schema compiled once, not rebuilt per reply"),
    Patch("event_types", "speed",
          ("rasa.shared.core.events.Event.resolve_by_type",),
          "event class by name from a table, not a walk over every subclass per event"),
    Patch("applied_events", "speed",
          ("rasa.shared.core.trackers.DialogueStateTracker.applied_events",),
          "worked out once per tracker state, not by every policy for every prediction"),
    Patch("graph_order", "speed",
          ("rasa.engine.runner.dask.DaskGraphRunner.run",),
          "the model's graph run in an order worked out once, not by dask on every call"),
    Patch("gc_freeze", "speed",
          ("rasa.core.run.load_agent_on_start",),
          "the loaded model frozen out of the garbage collector: no 0.5-1 s full collections"),
    Patch("dialogue_states", "speed",
          ("rasa.shared.core.domain.Domain.states_for_tracker_history",
           "rasa.core.policies.rule_policy.RulePolicy._get_possible_keys"),
          "states kept per tracker state; rules matched only as far back as the longest"),
    Patch("sparse_features", "speed",
          ("rasa.shared.nlu.training_data.message.Message._combine_features",),
          "a message's sparse features joined in one step, not one hstack per featurizer"),
    Patch("model_call", "speed",
          ("rasa.utils.tensorflow.models.RasaModel._rasa_predict",),
          "DIET's traced graph called directly, past tf.function's argument matching"),
    Patch("rasa_http", "speed",
          ("rasa.utils.endpoints.EndpointConfig.session",),
          "action-server requests on kept-alive connections with ujson bodies"),
    Patch("language_slot", "behaviour",
          ("rasa.core.actions.action.ActionExtractSlots.run",),
          "the `language` slot set from every message inside Rasa: replies follow the user"),
    Patch("form_answers", "behaviour",
          ("rasa.core.processor.MessageProcessor.parse_message",
           "rasa.core.test._collect_user_uttered_predictions"),
          "a plain answer to the form's question is read as `inform`, in serving and tests"),
    Patch("message_limit", "behaviour",
          ("rasa.core.agent.Agent.handle_message",),
          "every channel's message cleaned and cut to 1,000 characters before NLU"),
    Patch("strict_tracker_store", "behaviour",
          ("rasa.core.agent.FailSafeTrackerStore",),
          "tracker-store failures fail the turn instead of answering from memory"),
    Patch("metrics", "behaviour",
          ("rasa.core.run.configure_app",
           "rasa.core.processor.MessageProcessor.handle_message",
           "rasa.core.processor.MessageProcessor.run_action_extract_slots"),
          "GET /metrics, and each turn counted in memory (bot/metrics.py; off: METRICS=off)"),
)


class UnknownPatch(ValueError):
    """RASA_PATCHES_OFF names an entry that does not exist."""


def enabled(off: Iterable[str]) -> list[Patch]:
    """The entries left on when `off` (RASA_PATCHES_OFF's names) are switched off.

    >>> [patch.name for patch in enabled([ALL])]
    ['language_slot', 'form_answers', 'message_limit', 'strict_tracker_store', 'metrics']
    >>> len(enabled([])) == len(PATCHES)
    True
    >>> enabled(["gc-freeze"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    bot.rasa.patches.UnknownPatch: no patch named gc-freeze; known: tf_threads, ...
    """
    names = set(off)
    unknown = sorted(names - {patch.name for patch in PATCHES} - {ALL})
    if unknown:
        known = ", ".join(patch.name for patch in PATCHES)
        raise UnknownPatch(f"no patch named {', '.join(unknown)}; known: {known} "
                           f"(or {ALL}: every speed patch)")
    return [patch for patch in PATCHES
            if patch.name not in names and not (ALL in names and patch.kind == "speed")]


def install(off: Iterable[str] | None = None) -> list[Patch]:
    """Installs the enabled entries in order (`off`: RASA_PATCHES_OFF's unless given) and
    returns them; raises UnknownPatch before installing anything."""
    if off is None:
        from bot.settings import settings

        off = settings().rasa_patches_off
    chosen = enabled(off)
    for patch in chosen:
        patch.install()
    return chosen
