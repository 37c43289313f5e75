"""Sessions and CSRF tokens: random, per session, compared whole; a new id at login; idle and
absolute ends; the search and next-status rules the pages use."""

from __future__ import annotations

from bot.card_client import LossReport
from bot.rules.regions import default
from console.app import next_statuses, phone_matches, search
from console.sessions import ABSOLUTE_SECONDS, IDLE_SECONDS, Session, Sessions
from tests.testkit.set_clock import SetClock, on_redis


def run(redis_url: str, steps):  # type: ignore[no-untyped-def]
    return on_redis(redis_url, lambda client, clock: steps(Sessions(client, clock), clock, client))


def test_the_csrf_token_must_be_presented_whole() -> None:
    session = Session("id", "li.wei", "token-value-123", 0.0)
    assert session.csrf_ok("token-value-123")
    for presented in (None, "", "token-value-12", "token-value-1234", "TOKEN-VALUE-123"):
        assert not session.csrf_ok(presented)


def test_each_session_has_its_own_random_id_and_token(redis_url: str) -> None:
    async def steps(sessions: Sessions, _clock, client):  # type: ignore[no-untyped-def]
        one, two = await sessions.start("li.wei"), await sessions.start("li.wei")
        keys = [key.decode() async for key in client.scan_iter("cardstaff:session:*")]
        return one, two, keys, await client.ttl(sessions.key(one.id))

    one, two, keys, ttl = run(redis_url, steps)
    assert one.id != two.id and one.csrf != two.csrf and len(one.id) >= 40
    # Redis holds digests of the ids, never an id a cookie carries.
    assert len(keys) == 2 and not any(one.id in key or two.id in key for key in keys)
    assert 0 < ttl <= IDLE_SECONDS


def test_login_replaces_the_anonymous_session(redis_url: str) -> None:
    async def steps(sessions: Sessions, _clock, _client):  # type: ignore[no-untyped-def]
        anonymous = await sessions.start()
        logged = await sessions.login(anonymous, "li.wei")
        return anonymous, logged, await sessions.get(anonymous.id), await sessions.get(logged.id)

    anonymous, logged, old, new = run(redis_url, steps)
    assert old is None and new is not None and new.user == "li.wei"
    assert logged.id != anonymous.id and logged.csrf != anonymous.csrf


def test_a_session_ends_after_its_absolute_lifetime(redis_url: str) -> None:
    async def steps(sessions: Sessions, clock: SetClock, _client):  # type: ignore[no-untyped-def]
        session = await sessions.start("li.wei")
        clock.now += ABSOLUTE_SECONDS - 1
        still = await sessions.get(session.id)
        clock.now += 2
        return still, await sessions.get(session.id), await sessions.get(session.id)

    still, ended, again = run(redis_url, steps)
    assert still is not None and ended is None and again is None


def report(reference: str, status: str = "reported_temporary", city: str = "北京",
           filed_on: str = "2026-12-01", phone: str = "13*******00") -> LossReport:
    return LossReport(reference, status, "2026-12-31", city, default(), "file_written_report",
                      phone_masked=phone, filed_on=filed_on)


def test_search_by_reference_date_phone_and_city() -> None:
    found = [report("SC-7K3F-9Q2M"), report("SC-AAAA-BBBB", city="上海", filed_on="2026-12-02",
                                            phone="13*******42")]
    assert [r.reference for r in search(found, "sc7k3f9q2m", "")[0]] == ["SC-7K3F-9Q2M"]
    assert [r.reference for r in search(found, "2026-12-02", "")[0]] == ["SC-AAAA-BBBB"]
    by_phone, kind = search(found, "1342", "")
    assert kind == "phone" and [r.reference for r in by_phone] == ["SC-AAAA-BBBB"]
    assert [r.reference for r in search(found, "", "上海")[0]] == ["SC-AAAA-BBBB"]
    assert search(found, "AAAA", "北京")[0] == []
    assert not phone_matches("", "1234") and not phone_matches("13*******42", "")


def test_next_statuses_follow_the_table_and_never_offer_expired() -> None:
    assert next_statuses("reported_temporary") == ["reported_written", "cancelled"]
    assert next_statuses("in_production") == ["ready_for_collection"]
    assert next_statuses("collected") == [] and next_statuses("unknown") == []
