"""The card service plans a notice's paths from the channel's name; the channels declare the
same paths in NOTICE_PATHS. Both sides must agree, or a path would be asked of a channel that
answers "no such path" for ever."""

from __future__ import annotations

import importlib

import pytest
import yaml

from bot.channels.base import ChannelInput
from card_service import notices
from tests.unit.test_docs import ROOT


def channel_classes() -> dict[str, type[ChannelInput]]:
    entries = yaml.safe_load((ROOT / "credentials.yml").read_text(encoding="utf-8"))
    found = {}
    for dotted in entries:
        module, _, name = dotted.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        found[cls.name()] = cls
    return found


def test_every_channel_declares_the_paths_the_card_service_plans() -> None:
    # The handoff API (bot/channels/handoff.py) is served as a channel, but no guardian
    # writes through it: no conversation of its own, nothing to plan.
    declared = {name: cls.NOTICE_PATHS for name, cls in channel_classes().items()
                if name != "handoff"}
    assert declared == notices.CHANNEL_PATHS


@pytest.mark.parametrize(("conversation", "consent", "paths"), [
    ("webchat:abc", True, ["page", "sms"]),
    ("wechat:oAbc", False, ["customer_service", "subscription", "template"]),
    ("facebook:123", True, ["standard", "utility", "sms"]),
    ("rest-guardian", True, ["sms"]),
    ("unknown:abc", False, []),
])
def test_plan(conversation: str, consent: bool, paths: list[str]) -> None:
    assert notices.plan(conversation, consent) == paths


def test_unreachable_jumps_past_the_channel_only() -> None:
    paths = ["session", "template", "sms"]
    assert notices.after_channel(paths, 0) == 2
    assert notices.after_channel(paths, 1) == 2
    assert notices.after_channel(paths, 2) == 3  # SMS itself unreachable: nothing after
    assert notices.after_channel(["message"], 0) == 1
