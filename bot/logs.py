"""One rule for every process's log lines: no whole ID or mobile number, whoever logs it.

`install()` wraps the log-record factory, so the mask applies to every logger in the process
(ours, Rasa's, rasa_sdk's, Sanic's) before any handler or formatter sees the record. Records
are only made for levels that are enabled, so a quiet logger costs nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from bot.rules.identity import masked_numbers

_installed = False


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
        masked = masked_numbers(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return record

    logging.setLogRecordFactory(masked_record)
    _installed = True
