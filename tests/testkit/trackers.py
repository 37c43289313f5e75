"""Running a custom action as the action server would: a rasa_sdk Tracker in, events out."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from bot.settings import ROOT

DOMAIN: dict[str, Any] = yaml.safe_load(Path(ROOT / "domain.yml").read_text(encoding="utf-8"))


def tracker(
    text: str = "", intent: str = "inform", slots: dict[str, Any] | None = None,
    entities: list[dict[str, Any]] | None = None, active_loop: str | None = None,
    sender: str = "test-user",
) -> Tracker:
    all_slots = {name: None for name in DOMAIN["slots"]}
    all_slots.update(slots or {})
    message = {"text": text, "intent": {"name": intent, "confidence": 1.0},
               "entities": entities or []}
    loop = {"name": active_loop} if active_loop else {}
    return Tracker(sender, all_slots, message, [], False, None, loop, "action_listen")


def run(action: Action, state: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The events the action returns and the messages it sent."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, state, DOMAIN))
    return list(events), dispatcher.messages


def slot_values(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def responses(messages: list[dict[str, Any]]) -> list[str]:
    return [m.get("response") for m in messages if m.get("response")]
