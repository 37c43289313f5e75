"""`python -m console serve | user add NAME --role ROLE | user disable NAME | user enable
NAME | user list`: the staff console and its accounts. A new password is read from the
terminal (asked twice), or from the first line of stdin when that is not a terminal; never
from the command line, where other users and the shell history would see it."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import getpass
import sys

from bot import settings as bot_settings
from bot.settings import Settings
from console.accounts import ROLES


def serve(settings: Settings) -> None:
    from bot.service import serve as serve_app
    from console.app import create_app

    serve_app("console", "staff console", lambda: create_app(settings), settings.bind_host,
              settings.staff_console_port)


def read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        sys.exit("the two passwords differ")
    return first


async def users(settings: Settings, args: argparse.Namespace) -> str:
    from bot import redis as bot_redis
    from console.accounts import Accounts

    client = bot_redis.async_client(settings.redis_url_for(bot_redis.CONSOLE_USER), "tool")
    accounts = Accounts(client)
    now = dt.datetime.now(dt.timezone.utc)
    try:
        if args.action == "add":
            account = await accounts.add(args.name, args.role, read_password(), now)
            return f"added {account.name} ({account.role})"
        if args.action in ("disable", "enable"):
            account = await accounts.set_disabled(args.name, args.action == "disable", now)
            return f"{account.name} is {'disabled' if account.disabled else 'enabled'}"
        found = await accounts.all()
        lines = [f"{a.name:<24} {a.role:<7} {'disabled' if a.disabled else 'enabled':<8} "
                 f"created {a.created_at}" for a in found]
        return "\n".join([*lines, f"{len(found)} account(s)"])
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m console", description="Staff console")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the staff console (STAFF_CONSOLE_PORT)")
    user = commands.add_parser("user", help="staff accounts").add_subparsers(
        dest="action", required=True)
    add = user.add_parser("add", help="a new account; the password from a prompt or stdin")
    add.add_argument("name")
    add.add_argument("--role", choices=ROLES, required=True)
    for verb in ("disable", "enable"):
        user.add_parser(verb, help=f"{verb} an account").add_argument("name")
    user.add_parser("list", help="every account")
    args = parser.parse_args(argv)

    settings = bot_settings.settings()
    if args.command == "serve":
        serve(settings)
        return
    import redis

    try:
        print(asyncio.run(users(settings, args)))
    except ValueError as error:
        sys.exit(f"console user {args.action}: {error}")
    except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
        sys.exit(f"console: Redis unavailable ({type(error).__name__})")


if __name__ == "__main__":
    main()
