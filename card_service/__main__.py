"""`python -m card_service serve | purge | list | show | notices | advance`: the service, its
retention sweep for cron, and the staff tool."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from bot import settings as bot_settings
from bot.rules import statuses
from bot.settings import Settings

if TYPE_CHECKING:
    from bot.card_client import CardClient, LossReport


def serve(settings: Settings) -> None:
    # The outbox task and the Lua scripts assume nothing about more workers, but one is
    # what `make run` supervises.
    from bot.service import serve as serve_app
    from card_service.app import create_app

    serve_app("card_service", "card service", lambda: create_app(settings),
              settings.bind_host, settings.card_service_port)


def purge(settings: Settings) -> int:
    """One retention sweep, as `serve` runs every minute: the number of reports erased."""
    import asyncio

    from bot import redis as bot_redis
    from card_service.store import Clock, Store

    async def sweep() -> int:
        store = Store(bot_redis.async_client(settings.redis_url, "tool"))
        clock = Clock(settings.clock_offset_days)
        try:
            return await store.sweep(clock.now(), clock.today(), settings.report_retention_days)
        finally:
            await store.redis.close()

    return asyncio.run(sweep())


def staff_client(settings: Settings) -> CardClient:
    from bot.card_client import CardClient

    if not settings.staff_token:
        sys.exit("card service: CARD_SERVICE_STAFF_TOKEN is not set (see .env)")
    return CardClient(settings.card_service_url, settings.staff_token)


def print_report(report: LossReport) -> None:
    print(f"{report.reference}  {report.status:<21} {report.city:<10} "
          f"valid until {report.valid_until}  child {report.child_id_masked}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m card_service",
                                     description="Card service and staff tool")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the card service API")
    commands.add_parser("purge", help="erase personal data past REPORT_RETENTION_DAYS now "
                                      "(serve does it every minute; this is for cron)")
    listing = commands.add_parser("list", help="list reports, newest first (staff)")
    listing.add_argument("--status", choices=statuses.STATUSES)
    listing.add_argument("--limit", type=int, default=50)
    show = commands.add_parser("show", help="one report with its history (staff)")
    show.add_argument("reference")
    ledger = commands.add_parser("notices", help="a report's notices, every attempt (staff)")
    ledger.add_argument("reference")
    advance = commands.add_parser("advance", help="move a report on (staff)")
    advance.add_argument("reference")
    advance.add_argument("--to", choices=sorted(statuses.STAFF_SETTABLE),
                         help="target status (default: the next on the normal path)")
    args = parser.parse_args(argv)

    settings = bot_settings.settings()
    if args.command == "serve":
        serve(settings)
        return
    if args.command == "purge":
        import redis

        try:
            erased = purge(settings)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            sys.exit(f"card service purge: Redis unavailable ({type(error).__name__})")
        print(f"purge: personal data of {erased} report(s) erased "
              f"(kept {settings.report_retention_days} days after a final status)")
        return

    from bot.card_client import CardServiceError

    client = staff_client(settings)
    try:
        if args.command == "list":
            reports = client.list_reports(status=args.status, limit=args.limit)
            for report in reports:
                print_report(report)
            print(f"{len(reports)} report(s)")
        elif args.command == "show":
            report = client.get_report(args.reference)
            print_report(report)
            for entry in report.history:
                print(f"  {entry.at}  {entry.status}")
        elif args.command == "notices":
            found = client.notices(args.reference)
            for notice in found:
                print(f"{notice['id']}  {notice['state']}  by {notice['delivered_path'] or '-'}"
                      f"  paths {' > '.join(notice['paths']) or '(none)'}")
                for attempt in notice["attempts"]:
                    print(f"  {attempt['at']}  {attempt['path']:<17} {attempt['outcome']:<11}"
                          f" {attempt['code']} {attempt['detail']}".rstrip())
            print(f"{len(found)} notice(s)")
        else:
            report = client.get_report(args.reference)
            target = args.to or statuses.next_on_main_line(report.status)
            if target is None:
                sys.exit(f"{report.reference} is {report.status}: there is no next status")
            report = client.set_status(report.reference, target)
            print(f"{report.reference} is now {report.status}")
    except CardServiceError as error:
        sys.exit(f"card service at {settings.card_service_url}: {error}")


if __name__ == "__main__":
    main()
