"""`rasa` as this project runs it: the enabled patches (bot/rasa/patches/), then Rasa's CLI.

Every Rasa command runs with them, so `rasa run`, `rasa shell`, `rasa test` and `rasa train`
see the same Rasa:

    python -m bot.rasa run --model models/bot.tar.gz ...   # any `rasa` command and arguments
    python -m bot.rasa --list-patches                       # each patch, on or off, and why
    RASA_PATCHES_OFF=all python -m bot.rasa run ...          # every speed patch off
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from bot import logs
from bot.rasa import patches
from bot.settings import settings

LIST = "--list-patches"


def listing(chosen: Sequence[patches.Patch]) -> str:
    """A table of every patch: name, kind, on or off, what it replaces (a name a line), why."""
    rows = [("name", "kind", "on/off", "replaces", "why")]
    for patch in patches.PATCHES:
        first, *more = patch.replaces
        rows.append((patch.name, patch.kind, "on" if patch in chosen else "off", first,
                     patch.why))
        rows.extend(("", "", "", name, "") for name in more)
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    return "\n".join("  ".join([*(cell.ljust(width) for cell, width in
                                  zip(row[:4], widths, strict=True)), row[4]]).rstrip()
                     for row in rows)


def main(argv: Sequence[str] | None = None) -> None:
    """Lists the patches (`--list-patches`), or installs the enabled ones and runs Rasa's
    command line with `argv` (the process's arguments when None)."""
    args = list(sys.argv[1:] if argv is None else argv)
    logs.install()
    try:
        chosen = patches.enabled(settings().rasa_patches_off)
    except patches.UnknownPatch as error:
        raise SystemExit(f"RASA_PATCHES_OFF: {error}") from None
    if args[:1] == [LIST]:
        print(listing(chosen))
        return
    # Secrets from the environment, never on the command line (`ps` shows it to every user):
    # this process's own argument list is not what `ps` reads.
    if args[:1] == ["run"]:
        config = settings()
        for flag, secret in (("--auth-token", config.rasa_token),
                             ("--jwt-secret", config.rasa_jwt_secret)):
            if secret and flag not in args:
                args += [flag, secret]
    # Rasa's command line, and `tf_threads`, read the command from sys.argv.
    sys.argv = ["rasa", *args]
    for patch in chosen:
        patch.install()
    from rasa.__main__ import main as rasa_main

    rasa_main()


if __name__ == "__main__":
    main()
