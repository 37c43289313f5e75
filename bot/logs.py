"""One rule for every process's log lines: no whole ID number, mobile number, name or
messaging-app user id, whoever logs it.

`install()` wraps the log-record factory, so the mask applies to every logger in the process
(ours, Rasa's, rasa_sdk's, Sanic's, aiogram's) before any handler or formatter sees the
record. Records are only made for levels that are enabled, so a quiet logger costs nothing.

At DEBUG, Rasa logs each turn as JSON events holding what was typed, the slots and the
bot's replies, and aiogram logs every Bot API request with its text: names cannot be told
from other words, so what people typed or were told is hidden there (its length kept), and
the form's personal slots are masked as the stored conversation masks them.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from bot.rasa.scrub import NAME_SLOTS, NUMBER_ENTITIES, PERSONAL_SLOTS, mask_name
from bot.rules.identity import mask, masked_numbers

_installed = False

# The keys of Rasa's JSON debug events that carry the conversation (Rasa's own list of what
# to anonymise, rasa/utils/log_utils.py), by the shape of what they hold.
_SLOT_KEYS = frozenset({"slot_values", "slot_candidates", "prefilled_slots"})
_EVENT_KEYS = frozenset({"rasa_event", "rasa_events", "prediction_events"})
_STATE_KEYS = frozenset({"tracker_states", "current_states", "old_states", "states"})
_TEXT_KEYS = frozenset({
    "text", "response_text", "user_text", "parse_data_text", "parse_data_entities",
    "tracker_latest_message", "message", "response", "successes", "current_entity",
    "next_entity", "entity", "token_text", "user_message", "json_message",
})
_CONVERSATION_KEYS = _SLOT_KEYS | _EVENT_KEYS | _STATE_KEYS | _TEXT_KEYS
_PERSONAL = frozenset(PERSONAL_SLOTS) | frozenset(NUMBER_ENTITIES)

_SLOT_LINE = re.compile(r"^(\t?)(\w+): (.*)$", re.MULTILINE)
_SLOT_SET = re.compile(r"SlotSet\(key: (\w+), value: (.*)\)", re.DOTALL)
_USER_TEXT = re.compile(r"(user text: ).*?(?= \| |\n|'|$)", re.MULTILINE)
# A "text" field in a dict or JSON written into a line (aiogram's requests and answers).
_TEXT_FIELD = re.compile(r"""(['"])text\1(\s*:\s*)(['"])((?:\\.|(?!\3).)*)\3""")

# WeChat openids: 28 characters of base64url, an "o" first.
_OPENID = re.compile(r"(?<![A-Za-z0-9_-])o[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-])")
# Conversations of the messaging apps are named `<channel>:<the app's id for the user>`
# (bot/channels/base.py); WhatsApp's id is a phone number, masked as one.
_APP_USER = re.compile(r"(?<![A-Za-z0-9_])(telegram|wechat|facebook):([A-Za-z0-9_-]+)")
# Telegram's ids where the Bot API library writes its requests and answers.
_CHAT_ID = re.compile(r"""((['"])(?:chat_id|user_id)\2:\s*['"]?|(['"])(?:chat|from)\3:\s*\{\s*"""
                      r"""(['"])id\4:\s*)(-?\d{5,})""")
# International numbers shorter than the 11 digits `masked_numbers` takes.
_SHORT_PHONE = re.compile(r"(?<![\w+])\+(\d{7,10})(?![\d])")
_SECRET = re.compile(r"""((['"])secret_token\2:\s*(['"]))[^'"]+""")


def _hidden(text: str) -> str:
    return f"<{len(text)} characters>"


def _ids(text: str) -> str:
    """Whole ID and phone numbers, app user ids and secrets in free text masked."""
    text = _SECRET.sub(r"\1***", text)
    text = _APP_USER.sub(lambda m: f"{m[1]}:{m[2][:4]}***", text)
    text = _OPENID.sub(lambda m: m[0][:4] + "***", text)
    text = _CHAT_ID.sub(lambda m: f"{m[1]}{m[5][:4]}***", text)
    text = _SHORT_PHONE.sub(lambda m: "+" + mask(m[1]), text)
    return masked_numbers(text)


def _slot_value(slot: str, value: Any) -> Any:
    if slot not in _PERSONAL or not isinstance(value, str) or value in ("", "None"):
        return value
    return mask_name(value) if slot in NAME_SLOTS else mask(value)


def _conversation(key: str, value: Any) -> Any:
    """A value Rasa logs under `key`, with what people typed or were told hidden and the
    personal slots masked; slot names, intents and actions kept."""
    if isinstance(value, dict) and "entity" in value:  # an entity: its type and place kept
        return {name: _slot_value(value["entity"], item) if name in ("value", "text")
                else item for name, item in value.items()}
    if isinstance(value, dict):
        return {name: (_slot_value(name, item) if name in _PERSONAL
                       else _hidden(item) if name == "text" and isinstance(item, str)
                       else _conversation(key, item)) for name, item in value.items()}
    if isinstance(value, list):
        return [_conversation(key, item) for item in value]
    if not isinstance(value, str):
        return value
    if key in _SLOT_KEYS:
        return _SLOT_LINE.sub(lambda m: f"{m[1]}{m[2]}: {_slot_value(m[2], m[3])}", value)
    if key in _STATE_KEYS:
        return _USER_TEXT.sub(lambda m: m[1] + "<hidden>", value)
    if key in _EVENT_KEYS:
        slot = _SLOT_SET.fullmatch(value)
        if slot:
            return f"SlotSet(key: {slot[1]}, value: {_slot_value(slot[1], slot[2])})"
        if value.startswith(("BotUttered(", "UserUttered(")):
            return value.split("(", 1)[0] + "(<hidden>)"
        return value
    return _hidden(value)


def _leaves(value: Any) -> Any:
    if isinstance(value, dict):
        return {name: _leaves(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_leaves(item) for item in value]
    return _ids(value) if isinstance(value, str) else value


def _event(message: str) -> str | None:
    """One of Rasa's JSON debug events made safe, or None when the message is not one."""
    if not (message.startswith("{") and message.endswith("}") and '"event"' in message):
        return None
    try:
        event = json.loads(message)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    safe = {key: _conversation(key, value) if key in _CONVERSATION_KEYS else value
            for key, value in event.items()}
    return json.dumps(_leaves(safe))


def masked(message: str) -> str:
    """A log message as it may be written.

    >>> masked("filing for 110105201501010013, phone 139-1234-5678")
    'filing for 1101**********0013, phone 13*******78'
    >>> masked("Starting a new session for conversation ID 'telegram:7561618097'.")
    "Starting a new session for conversation ID 'telegram:7561***'."
    >>> masked("lock for wechat:oA1b2C3d4E5f6G7h8I9j0K1l2M3n, from oA1b2C3d4E5f6G7h8I9j0K1l2M3n")
    'lock for wechat:oA1b***, from oA1b***'
    >>> masked("Make request: {'chat_id': '7561618097', 'text': '孩子：何欣怡'}")
    "Make request: {'chat_id': '7561***', 'text': '<6 characters>'}"
    """
    event = _event(message)
    if event is not None:
        return event
    return _ids(_TEXT_FIELD.sub(lambda m: f"{m[1]}text{m[1]}{m[2]}{m[3]}{_hidden(m[4])}{m[3]}",
                                message))


def install() -> None:
    global _installed
    if _installed:
        return
    make = logging.getLogRecordFactory()

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a broken format: logged as it is, as logging would
            return record
        safe = masked(message)
        if safe != message:
            record.msg, record.args = safe, ()
        return record

    logging.setLogRecordFactory(masked_record)
    _installed = True


def install_for(component: str) -> None:
    """Masked records, and `component`'s own INFO lines on stderr with their time (the
    services run under honcho or a container, which keep stderr)."""
    install()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log = logging.getLogger(component)
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
