"""The staff console as a real process over HTTP, beside a real card service on a real
Redis: logins, CSRF, roles, moves through the state machine, the audited reveal and the
card service naming the console's user in its log."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from tests.integration.conftest import CardService
from tests.testkit import people
from tests.testkit.console import ConsoleServer, console_stack
from tests.testkit.redis_server import RedisServer

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
USERS = {"ada": "agency", "ben": "bank", "amy": "agent", "root": "admin"}


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[ConsoleServer, CardService, RedisServer]]:
    with console_stack(tmp_path_factory.mktemp("console"), USERS, PASSWORD) as started:
        yield started


@pytest.fixture
def console(parts: tuple[ConsoleServer, CardService, RedisServer]) -> ConsoleServer:
    return parts[0]


@pytest.fixture
def card(parts: tuple[ConsoleServer, CardService, RedisServer]) -> CardService:
    return parts[1]


def file_report(card: CardService, city: str = "北京") -> str:
    response = card.post("/v1/loss-reports", people.report_body(f"conv-{uuid.uuid4()}", city),
                         **{"Idempotency-Key": str(uuid.uuid4())})
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def logged_in(console: ConsoleServer, name: str, password: str = PASSWORD) -> requests.Session:
    browser = requests.Session()
    page = browser.get(console.url + "/login", timeout=10)
    answer = browser.post(console.url + "/login", timeout=10, allow_redirects=False,
                          data={"csrf": csrf_of(page.text), "name": name, "password": password})
    assert answer.status_code == 303, answer.text
    return browser


def test_pages_carry_a_strict_policy_and_safe_cookies(console: ConsoleServer) -> None:
    page = requests.get(console.url + "/login", timeout=10)
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert "<script" not in page.text and "style=" not in page.text
    cookie = page.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    # Bound to loopback and reached over plain http: the one case without Secure.
    assert "Secure" not in cookie
    behind_proxy = requests.get(console.url + "/login", timeout=10,
                                headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in behind_proxy.headers["Set-Cookie"]


def test_login_then_logout_ends_the_session(console: ConsoleServer) -> None:
    browser = logged_in(console, "ada")
    reports = browser.get(console.url + "/reports?lang=en", timeout=10)
    assert reports.status_code == 200 and "ada (agency)" in reports.text
    browser.post(console.url + "/logout", data={"csrf": csrf_of(reports.text)}, timeout=10)
    after = browser.get(console.url + "/reports", timeout=10, allow_redirects=False)
    assert after.status_code == 302 and after.headers["Location"] == "/login"


def test_a_post_without_the_csrf_token_is_403_and_does_nothing(
        console: ConsoleServer, card: CardService) -> None:
    reference = file_report(card)
    browser = logged_in(console, "ada")
    for body in ({"status": "reported_written"},
                 {"status": "reported_written", "csrf": "forged"}):
        refused = browser.post(f"{console.url}/reports/{reference}/status", data=body,
                               timeout=10, allow_redirects=False)
        assert refused.status_code == 403
    assert card.get(f"/v1/loss-reports/{reference}", role="staff").json()["status"] == \
        "reported_temporary"
    # Nor does a login form without one.
    assert requests.post(console.url + "/login", data={"name": "ada", "password": PASSWORD},
                         timeout=10).status_code == 403


def test_an_agency_clerk_moves_a_report_only_where_the_table_allows(
        console: ConsoleServer, card: CardService) -> None:
    reference = file_report(card)
    browser = logged_in(console, "ada")
    page = browser.get(f"{console.url}/reports/{reference}", timeout=10).text
    assert 'value="reported_written"' in page and 'value="cancelled"' in page
    assert 'value="collected"' not in page
    moved = browser.post(f"{console.url}/reports/{reference}/status", timeout=10,
                         data={"csrf": csrf_of(page), "status": "reported_written"})
    assert moved.status_code == 200 and 'value="replacement_applied"' in moved.text
    assert card.get(f"/v1/loss-reports/{reference}", role="staff").json()["status"] == \
        "reported_written"
    skipped = browser.post(f"{console.url}/reports/{reference}/status", timeout=10,
                           data={"csrf": csrf_of(page), "status": "collected"})
    assert "?error=conflict" in skipped.url
    assert card.get(f"/v1/loss-reports/{reference}", role="staff").json()["status"] == \
        "reported_written"
    log = card.process.log_path.read_text()
    assert f"{reference}: reported_written asked by staff user ada" in log


@pytest.mark.parametrize("name", ["ben", "amy"])
def test_clerks_and_agents_cannot_open_accounts_or_audit(console: ConsoleServer,
                                                        name: str) -> None:
    browser = logged_in(console, name)
    for path in ("/accounts", "/audit"):
        assert browser.get(console.url + path, timeout=10).status_code == 403
    assert browser.get(console.url + "/dashboard", timeout=10).status_code == 403


def test_an_agent_reads_but_cannot_move_or_reveal(console: ConsoleServer,
                                                 card: CardService) -> None:
    reference = file_report(card)
    browser = logged_in(console, "amy")
    page = browser.get(f"{console.url}/reports/{reference}", timeout=10)
    assert page.status_code == 200 and 'name="status"' not in page.text
    assert "/reveal" not in page.text
    for action, body in (("status", {"status": "reported_written"}), ("reveal", {})):
        refused = browser.post(f"{console.url}/reports/{reference}/{action}", timeout=10,
                               data={"csrf": csrf_of(page.text), **body})
        assert refused.status_code == 403
    assert browser.get(console.url + "/handoff", timeout=10).status_code == 200


def test_views_and_the_reveal_are_audited_for_the_admin(console: ConsoleServer,
                                                       card: CardService) -> None:
    reference = file_report(card)
    bank = logged_in(console, "ben")
    page = bank.get(f"{console.url}/reports/{reference}", timeout=10).text
    assert "13*******00" in page and "13800138000" not in page
    revealed = bank.post(f"{console.url}/reports/{reference}/reveal", timeout=10,
                         data={"csrf": csrf_of(page)})
    assert "13800138000" in revealed.text
    assert "13800138000" not in bank.get(f"{console.url}/reports/{reference}", timeout=10).text
    assert f"{reference}: phone number revealed to staff user ben" in \
        card.process.log_path.read_text()
    audit = logged_in(console, "root").get(f"{console.url}/audit?reference={reference}",
                                          timeout=10).text
    rows = re.findall(r"<tr>(.*?)</tr>", audit)
    reveals = [row for row in rows if ">reveal<" in row and "guardian.phone<" in row]
    views = [row for row in rows if ">view<" in row and "guardian.phone_masked" in row]
    assert len(reveals) == 1 and "ben (bank)" in reveals[0]
    assert len(views) == 3  # the page, the page the reveal answered with, the reload
    assert "13800138000" not in audit


def test_wrong_passwords_lock_the_account_even_for_the_right_one(
        console: ConsoleServer) -> None:
    console.add_user("carol", "agency", PASSWORD)
    browser = requests.Session()
    token = csrf_of(browser.get(console.url + "/login", timeout=10).text)
    answers = [browser.post(console.url + "/login", timeout=10,
                            data={"csrf": token, "name": "carol", "password": "wrong guess!!"})
               for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    right = browser.post(console.url + "/login", timeout=10, allow_redirects=False,
                         data={"csrf": token, "name": "carol", "password": PASSWORD})
    assert right.status_code == 429 and 0 < int(right.headers["Retry-After"]) <= 31


def test_a_disabled_account_is_logged_out_at_once(console: ConsoleServer) -> None:
    console.add_user("dora", "bank", PASSWORD)
    browser = logged_in(console, "dora")
    done = console.command("user", "disable", "dora")
    assert done.returncode == 0 and "dora is disabled" in done.stdout
    assert browser.get(console.url + "/reports", timeout=10,
                       allow_redirects=False).status_code == 302
    listing = console.command("user", "list").stdout
    assert re.search(r"dora\s+bank\s+disabled", listing)


def test_accounts_live_under_their_own_prefix_with_argon2_hashes(
        parts: tuple[ConsoleServer, CardService, RedisServer]) -> None:
    client: redis.Redis = parts[2].client()
    stored = client.hget("cardstaff:user:ada", "hash")
    assert stored is not None and stored.startswith("$argon2id$") and PASSWORD not in stored
    assert not [key for key in client.scan_iter("cardsvc:*") if "staff" in key]


def test_the_command_refuses_bad_input_with_a_reason(console: ConsoleServer) -> None:
    short = console.command("user", "add", "erin", "--role", "bank", stdin="short\n")
    assert short.returncode != 0 and "at least 12 characters" in short.stderr
    twice = console.command("user", "add", "ada", "--role", "bank", stdin=PASSWORD + "\n")
    assert twice.returncode != 0 and "exists" in twice.stderr
    bad = console.command("user", "add", "Erin Smith", "--role", "bank", stdin=PASSWORD + "\n")
    assert bad.returncode != 0 and "lower-case" in bad.stderr


def test_language_switch_and_search(console: ConsoleServer, card: CardService) -> None:
    reference = file_report(card, city="上海")
    browser = logged_in(console, "ada")
    english = browser.get(console.url + "/reports?lang=en", timeout=10).text
    assert "Reports" in english and 'lang="en"' in english
    chinese = browser.get(console.url + "/reports?lang=zh", timeout=10).text
    assert "挂失记录" in chinese
    by_reference = browser.get(console.url + "/reports", params={"q": reference.lower()},
                               timeout=10).text
    assert reference in by_reference and "显示 1 条" in by_reference
    by_city = browser.get(console.url + "/reports", params={"city": "上海"}, timeout=10).text
    assert reference in by_city
    by_phone = browser.get(console.url + "/reports", params={"q": "8000"}, timeout=10).text
    assert reference in by_phone
    nobody = browser.get(console.url + "/reports", params={"q": "1999-01-01"}, timeout=10).text
    assert reference not in nobody


def test_health(console: ConsoleServer, tmp_path: Path) -> None:
    assert requests.get(console.url + "/health", timeout=5).json() == {"status": "ok",
                                                                       "redis": True}


def test_the_card_service_reveals_a_phone_to_staff_only_while_kept(card: CardService) -> None:
    conversation = f"conv-{uuid.uuid4()}"
    filed = card.post("/v1/loss-reports", people.report_body(conversation),
                      **{"Idempotency-Key": str(uuid.uuid4())}).json()
    path = f"/v1/loss-reports/{filed['reference']}/reveal"
    assert card.post(path, {}).status_code == 403  # the assistant's token
    assert card.post("/v1/loss-reports/SC-0000-0000/reveal", {}, role="staff").status_code == 404
    shown = card.post(path, {}, role="staff")
    assert shown.json() == {"reference": filed["reference"], "phone": "13800138000"}
    assert f"{filed['reference']}: phone number revealed to the staff token" in \
        card.process.log_path.read_text()
    # A machine with the shared staff token cannot pass itself off as a person; the
    # console's own token names one, and is a staff token only.
    card.post(path, {}, role="staff", **{"X-Staff-User": "mallory"})
    card.post(path, {}, role="console", **{"X-Staff-User": "li.wei"})
    log = card.process.log_path.read_text()
    assert "staff user mallory" not in log
    assert f"{filed['reference']}: phone number revealed to staff user li.wei" in log
    assert card.post("/v1/loss-reports", people.report_body(f"conv-{uuid.uuid4()}"),
                     role="console", **{"Idempotency-Key": str(uuid.uuid4())}).status_code == 403
    # The guardian asked for erasure; it happens when the report is final.
    card.post(f"/v1/loss-reports/{filed['reference']}/erase", {"conversation_id": conversation})
    card.post(f"/v1/loss-reports/{filed['reference']}/events", {"status": "cancelled"},
              role="staff")
    gone = card.post(path, {}, role="staff")
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "personal_data_erased"
    assert "13800138000" not in card.process.log_path.read_text()
