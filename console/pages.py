"""The console's pages as HTML: no script at all, one stylesheet, every value escaped."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote, urlencode

from bot.card_client import LossReport
from bot.rules.china_time import CHINA, minute
from console.accounts import ROLES, Account, may
from console.audit import Entry
from console.dashboard import COUNT, PERCENT, SECONDS, UNSET, PanelFigures, Week
from console.words import word

NAV = (("reports", "/reports"), ("handoff", "/handoff"), ("dashboard", "/dashboard"),
       ("accounts", "/accounts"), ("audit", "/audit"))


@dataclass(frozen=True)
class View:
    """Who looks, in which language, and what their forms carry."""

    language: str
    path: str
    user: str = ""
    role: str = ""
    csrf: str = ""

    def w(self, key: str, **values: object) -> str:
        return escape(word(key, self.language, **values))


def e(value: Any) -> str:
    return escape(str(value if value is not None else ""))


def moment(value: Any) -> str:
    """A stored UTC moment shown on China's clock, staff's own; the exact value kept in
    the tag for copying into a query."""
    return f'<time datetime="{e(value)}">{e(minute(value))}</time>'


def csrf_field(view: View) -> str:
    return f'<input type="hidden" name="csrf" value="{e(view.csrf)}">'


def layout(view: View, title: str, body: str, active: str = "") -> str:
    other = "en" if view.language == "zh" else "zh"
    nav = ""
    if view.user:
        links = "".join(
            f'<li><a href="{href}"{" aria-current=page" if key == active else ""}>'
            f"{view.w(key)}</a></li>"
            for key, href in NAV if may(view.role, key))
        nav = (f'<nav aria-label="{view.w("title")}"><ul>{links}</ul></nav>'
               f'<form method="post" action="/logout" class="logout">{csrf_field(view)}'
               f'<span>{view.w("signed_in_as", user=view.user, role=view.role)}</span> '
               f'<button type="submit">{view.w("logout")}</button></form>')
    switch = f'{e(view.path)}?{urlencode({"lang": other})}'
    return (
        f'<!doctype html><html lang="{"zh-CN" if view.language == "zh" else "en"}"><head>'
        '<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        'initial-scale=1"><link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/static/console.css">'
        f"<title>{e(title)} · {view.w('title')}</title></head><body>"
        f'<a class="skip" href="#main">{view.w("skip")}</a>'
        f'<header><p class="brand">{view.w("title")}</p>{nav}'
        f'<a class="lang" href="{switch}" lang="{other}">{view.w("language")}</a></header>'
        f'<main id="main"><h1>{e(title)}</h1>{body}</main></body></html>')


def login(view: View, message: str = "", name: str = "") -> str:
    alert = f'<p class="alert" role="alert">{e(message)}</p>' if message else ""
    body = (f'{alert}<form method="post" action="/login" class="card">{csrf_field(view)}'
            f'<label for="name">{view.w("name")}</label>'
            f'<input id="name" name="name" autocomplete="username" required value="{e(name)}">'
            f'<label for="password">{view.w("password")}</label>'
            '<input id="password" name="password" type="password" '
            'autocomplete="current-password" required>'
            f'<button type="submit">{view.w("login")}</button></form>')
    return layout(view, word("login", view.language), body)


def message(view: View, title_key: str, text_key: str, active: str = "") -> str:
    return layout(view, word(title_key, view.language),
                  f'<p class="notice">{view.w(text_key)}</p>', active)


def _options(choices: Iterable[tuple[str, str]], chosen: str) -> str:
    return "".join(f'<option value="{e(value)}"{" selected" if value == chosen else ""}>'
                   f"{e(label)}</option>" for value, label in choices)


def reports(view: View, found: list[LossReport], query: str, status: str, city: str,
            cities: list[str], labels: dict[str, str]) -> str:
    any_ = word("any", view.language)
    form = (f'<form method="get" action="/reports" class="filters" role="search">'
            f'<label for="q">{view.w("search")}</label>'
            f'<input id="q" name="q" value="{e(query)}" aria-describedby="q-hint">'
            f'<small id="q-hint">{view.w("search_hint")}</small>'
            f'<label for="status">{view.w("status")}</label><select id="status" name="status">'
            f'{_options([("", any_), *labels.items()], status)}</select>'
            f'<label for="city">{view.w("city")}</label><select id="city" name="city">'
            f'{_options([("", any_), *((c, c) for c in cities)], city)}</select>'
            f'<button type="submit">{view.w("search")}</button></form>')
    if not found:
        return layout(view, word("reports", view.language),
                      form + f'<p class="notice">{view.w("none_found")}</p>', "reports")
    rows = "".join(
        f'<tr><td data-label="{view.w("reference")}"><a href="/reports/{e(r.reference)}">'
        f'{e(r.reference)}</a></td>'
        f'<td data-label="{view.w("status")}">{e(labels.get(r.status, r.status))}</td>'
        f'<td data-label="{view.w("city")}">{e(r.city or "-")}</td>'
        f'<td data-label="{view.w("filed_on")}">{e(r.filed_on)}</td>'
        f'<td data-label="{view.w("valid_until")}">{e(r.valid_until)}</td></tr>'
        for r in found)
    table = (f'<p>{view.w("shown", count=len(found))}</p><table class="list"><thead><tr>'
             f'<th scope="col">{view.w("reference")}</th><th scope="col">{view.w("status")}</th>'
             f'<th scope="col">{view.w("city")}</th><th scope="col">{view.w("filed_on")}</th>'
             f'<th scope="col">{view.w("valid_until")}</th></tr></thead>'
             f"<tbody>{rows}</tbody></table>")
    return layout(view, word("reports", view.language), form + table, "reports")


def report(view: View, r: LossReport, notices: list[dict[str, Any]], next_statuses: list[str],
           labels: dict[str, str], flash: str = "", phone: str = "") -> str:
    yes_no = view.w("yes") if r.sms_consent else view.w("no")
    facts = [("status", labels.get(r.status, r.status)), ("city", r.city or "-"),
             ("filed_on", r.filed_on), ("valid_until", r.valid_until),
             ("child_id", r.child_id_masked or "-"), ("guardian_id", r.guardian_id_masked or "-"),
             ("phone", r.phone_masked or "-"), ("relationship", r.relationship or "-"),
             ("sms_consent", None), ("personal_data", None)]
    rows = "".join(
        f'<dt>{view.w(key)}</dt><dd>{e(value) if value is not None else ""}'
        f'{yes_no if key == "sms_consent" else ""}'
        f'{view.w("erased") if key == "personal_data" and r.personal_data == "erased" else ""}'
        f'{view.w("kept") if key == "personal_data" and r.personal_data != "erased" else ""}'
        "</dd>" for key, value in facts)
    parts = [f'<p class="alert" role="status">{e(flash)}</p>' if flash else "",
             f'<dl class="facts">{rows}</dl>']
    if phone:
        parts.append(f'<p class="revealed" role="status">{view.w("revealed")} '
                     f'<strong>{e(phone)}</strong></p>')
    elif may(view.role, "reveal") and r.personal_data != "erased":
        parts.append(f'<form method="post" action="/reports/{e(r.reference)}/reveal">'
                     f'{csrf_field(view)}<button type="submit" class="secondary">'
                     f'{view.w("reveal")}</button></form>')
    parts.append(f'<h2>{view.w("next_statuses")}</h2>')
    if not next_statuses:
        parts.append(f'<p>{view.w("final")}</p>')
    elif not may(view.role, "move"):
        parts.append(f'<p>{view.w("read_only")}</p>')
    else:
        buttons = "".join(
            f'<button type="submit" name="status" value="{e(s)}">'
            f'{view.w("move_to", label=labels.get(s, s))}</button>' for s in next_statuses)
        parts.append(f'<form method="post" action="/reports/{e(r.reference)}/status" '
                     f'class="moves">{csrf_field(view)}{buttons}</form>')
    history = "".join(f'<li>{moment(h.at)} {e(labels.get(h.status, h.status))}</li>'
                      for h in r.history)
    parts.append(f'<h2>{view.w("history")}</h2><ol class="history">{history}</ol>')
    parts.append(f'<h2>{view.w("notices")}</h2>')
    if not notices:
        parts.append(f'<p>{view.w("no_notices")}</p>')
    for notice in notices:
        attempts = "".join(
            f'<tr><td data-label="{view.w("when")}">{moment(a.get("at"))}</td>'
            f'<td data-label="{view.w("path")}">{e(a.get("path"))}</td>'
            f'<td data-label="{view.w("outcome")}">{e(a.get("outcome"))} {e(a.get("code"))}'
            f'</td></tr>' for a in notice.get("attempts", []))
        parts.append(
            f'<section class="notice-entry"><h3>{e(notice.get("kind"))} · '
            f'{e(notice.get("state"))}</h3><p>{e(" > ".join(notice.get("paths", [])))}</p>'
            f'<table class="list"><thead><tr><th scope="col">{view.w("when")}</th>'
            f'<th scope="col">{view.w("path")}</th><th scope="col">{view.w("outcome")}</th>'
            f"</tr></thead><tbody>{attempts}</tbody></table></section>")
    return layout(view, r.reference, "".join(parts), "reports")


def accounts(view: View, found: list[Account]) -> str:
    rows = []
    for a in found:
        verb = "enable" if a.disabled else "disable"
        rows.append(
            f'<tr><td data-label="{view.w("name")}">{e(a.name)}</td>'
            f'<td data-label="{view.w("role")}">{e(a.role)}</td>'
            f'<td data-label="{view.w("state")}">'
            f'{view.w("disabled") if a.disabled else view.w("enabled")}</td>'
            f'<td data-label="{view.w("created")}">{moment(a.created_at)}</td><td>'
            f'<form method="post" action="/accounts/{e(a.name)}/{verb}">{csrf_field(view)}'
            f'<button type="submit" class="secondary">{view.w(verb)}</button></form></td></tr>')
    body = (f'<p>{view.w("accounts_hint")} ({e(", ".join(ROLES))})</p>'
            f'<table class="list"><thead><tr><th scope="col">{view.w("name")}</th>'
            f'<th scope="col">{view.w("role")}</th><th scope="col">{view.w("state")}</th>'
            f'<th scope="col">{view.w("created")}</th><td></td></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')
    return layout(view, word("accounts", view.language), body, "accounts")


def audit(view: View, entries: list[Entry]) -> str:
    rows = "".join(
        f'<tr><td data-label="{view.w("when")}">{moment(x.at)}</td>'
        f'<td data-label="{view.w("who")}">{e(x.user)} ({e(x.role)})</td>'
        f'<td data-label="{view.w("action")}">{e(x.action)}</td>'
        f'<td data-label="{view.w("reference")}">{e(x.reference)}</td>'
        f'<td data-label="{view.w("fields")}">{e(", ".join(x.fields))}</td>'
        f'<td data-label="{view.w("detail")}">{e(x.detail)}</td></tr>' for x in entries)
    body = (f'<table class="list audit"><thead><tr><th scope="col">{view.w("when")}</th>'
            f'<th scope="col">{view.w("who")}</th><th scope="col">{view.w("action")}</th>'
            f'<th scope="col">{view.w("reference")}</th><th scope="col">{view.w("fields")}</th>'
            f'<th scope="col">{view.w("detail")}</th></tr></thead><tbody>{rows}</tbody></table>')
    return layout(view, word("audit", view.language), body, "audit")


# ---- the live handoff pages (console/handoff.py) -------------------------------------------
# The one page with a script: the case page loads /static/console.js (same origin) to show
# the guardian's messages as they come; without it, the forms and a reload still work.

LANGUAGE_NAMES = {"zh": "中文", "en": "English"}
def clock_time(at: Any) -> str:
    """Epoch seconds as HH:MM:SS China time (console.js shows its messages the same way).

    >>> clock_time(0), clock_time(None)
    ('08:00:00', '')
    """
    if not isinstance(at, (int, float)):
        return ""
    return dt.datetime.fromtimestamp(at, CHINA).strftime("%H:%M:%S")


def said(view: View, text: Any) -> str:
    """A line as the agent should read it: a button press or the page's opening message
    arrives as Rasa's payload (`/request_human`, `/greet{"language": "en"}`) and is shown
    as the choice it stands for.

    >>> said(View("en", "/"), '/greet{"language": "en"}'), said(View("en", "/"), "hi /x")
    ('<em>Chose: greet</em>', 'hi /x')
    """
    payload = PAYLOAD.match(str(text or ""))
    if payload:
        return f'<em>{view.w("chose")}{e(payload[1])}</em>'
    return e(text)


PAYLOAD = re.compile(r"^/(\w+)(?:\{.*\})?$", re.DOTALL)


def waited(view: View, seconds: Any) -> str:
    """A waiting time for people: seconds under a minute, then minutes, then hours.

    >>> v = View("en", "/")
    >>> waited(v, 42.4), waited(v, 600), waited(v, 7380)
    ('42 s', '10 min', '2 h 3 min')
    """
    n = int(seconds or 0)
    if n < 60:
        return word("seconds_short", view.language, n=n)
    if n < 3600:
        return word("minutes_short", view.language, n=n // 60)
    return word("hours_short", view.language, h=n // 3600, m=n // 60 % 60)


def case_href(conversation: str) -> str:
    return "/handoff/" + quote(conversation, safe="")


def _language(value: Any) -> str:
    return LANGUAGE_NAMES.get(str(value), str(value or ""))


def _reason(view: View, reason: Any) -> str:
    return view.w("reason_failed_tries") if reason == "failed_tries" else view.w("reason_asked")


def _case_cells(view: View, c: dict[str, Any], keys: tuple[str, ...]) -> str:
    """The table cells of one case in the queue, in the order of `keys`."""
    language = _language(c.get("language"))
    late = (f' <strong class="after-hours">{view.w("after_hours")}</strong>'
            if c.get("after_hours") else "")
    values = {
        "conversation": f'<a href="{e(case_href(c["conversation"]))}">{e(c["conversation"])}</a>',
        "waited": e(waited(view, c.get("waiting_seconds"))) + late,
        "case_language": e(language), "channel": e(c.get("channel")),
        "reason": _reason(view, c.get("reason")), "agent": e(c.get("agent"))}
    return "".join(f'<td data-label="{view.w(k)}">{values[k]}</td>' for k in keys)


def _case_table(view: View, kind: str, cases: list[dict[str, Any]], keys: tuple[str, ...],
                take: bool) -> str:
    head = "".join(f'<th scope="col">{view.w(k)}</th>' for k in keys)
    rows = "".join(
        f"<tr>{_case_cells(view, c, keys)}"
        + (f'<td><form method="post" action="{e(case_href(c["conversation"]))}/take">'
           f'{csrf_field(view)}<button type="submit">{view.w("take")}</button></form></td>'
           if take else "") + "</tr>" for c in cases)
    return (f'<table class="list {kind}"><thead><tr>{head}{"<td></td>" if take else ""}'
            f"</tr></thead><tbody>{rows}</tbody></table>")


def handoff_queue(view: View, queue: dict[str, Any], flash: str = "") -> str:
    staffed = "staffed_now" if queue.get("staffed_now") else "unstaffed_now"
    parts = [f'<p class="alert" role="status">{e(flash)}</p>' if flash else "",
             f'<p class="notice">{view.w(staffed)} '
             f'<a href="/handoff">{view.w("queue_refresh")}</a></p>',
             f'<h2>{view.w("queue_waiting")}</h2>']
    waiting = queue.get("waiting") or []
    parts.append(_case_table(view, "queue", waiting, (
        "conversation", "waited", "case_language", "channel", "reason"), take=True)
        if waiting else f'<p>{view.w("queue_empty")}</p>')
    parts.append(f'<h2>{view.w("queue_taken")}</h2>')
    taken = queue.get("taken") or []
    parts.append(_case_table(view, "taken", taken, (
        "conversation", "agent", "waited", "case_language", "channel"), take=False)
        if taken else f'<p>{view.w("queue_none_taken")}</p>')
    return layout(view, word("handoff", view.language), "".join(parts), "handoff")


def _line(view: View, line: dict[str, Any]) -> str:
    who = {"guardian": "from_guardian", "agent": "from_agent"}.get(str(line.get("from")),
                                                                   "from_assistant")
    buttons = line.get("buttons") or []
    extra = (f'<p class="buttons">{view.w("buttons")}{e(" · ".join(map(str, buttons)))}</p>'
             if buttons else "")
    seq = f' data-seq="{e(line["seq"])}"' if "seq" in line else ""
    return (f'<li class="from-{e(line.get("from"))}"{seq}><span class="who">{view.w(who)}</span>'
            f' <time>{e(clock_time(line.get("at")))}</time>'
            f'<p>{said(view, line.get("text"))}</p>{extra}</li>')


def handoff_case(view: View, case: dict[str, Any], messages: list[dict[str, Any]],
                 after: int, flash: str = "") -> str:
    conversation = str(case["conversation"])
    href = case_href(conversation)
    mine = case.get("agent") == view.user
    state = (view.w("held_by_you") if mine else
             view.w("held_by", agent=case["agent"]) if case.get("agent") else
             view.w("not_taken_yet"))
    facts = [("channel", e(case.get("channel"))),
             ("case_language", e(_language(case.get("language")))),
             ("reason", _reason(view, case.get("reason"))),
             ("waited", e(waited(view, case.get("waiting_seconds")))
              + (f' <strong class="after-hours">{view.w("after_hours")}</strong>'
                 if case.get("after_hours") else "")),
             ("agent", state)]
    rows = "".join(f"<dt>{view.w(key)}</dt><dd>{value}</dd>" for key, value in facts)
    parts = [f'<p class="alert" role="status">{e(flash)}</p>' if flash else "",
             f'<dl class="facts">{rows}</dl>']
    if not case.get("agent"):
        parts.append(f'<form method="post" action="{e(href)}/take" class="moves">'
                     f'{csrf_field(view)}<button type="submit">{view.w("take")}</button></form>')
    transcript = case.get("transcript") or []
    parts.append(f'<h2>{view.w("transcript")}</h2>')
    parts.append(f'<ol class="chat transcript">{"".join(_line(view, x) for x in transcript)}</ol>'
                 if transcript else f'<p>{view.w("no_transcript")}</p>')
    if case.get("agent"):
        labels = {f"data-label-{k}": view.w(f"from_{k}") for k in ("guardian", "agent")}
        data = "".join(f' {k}="{v}"' for k, v in labels.items())
        parts.append(
            f'<h2 id="live-title">{view.w("live")}</h2>'
            f'<ol id="live" class="chat live" aria-labelledby="live-title" aria-live="polite"'
            f' data-url="{e(href)}/messages" data-after="{int(after)}"'
            f' data-stopped="{view.w("live_stopped", why="{why}")}"'
            f' data-retrying="{view.w("live_retrying")}"{data}>'
            f'{"".join(_line(view, m) for m in messages)}</ol>'
            '<p id="live-status" class="live-status" role="status"></p>')
    if mine:
        parts.append(
            f'<form method="post" action="{e(href)}/reply" id="reply" class="reply">'
            f'{csrf_field(view)}<label for="reply-text">{view.w("reply")}</label>'
            '<textarea id="reply-text" name="text" rows="3" maxlength="2000" required>'
            f'</textarea><button type="submit">{view.w("send")}</button></form>'
            f'<div class="moves"><form method="post" action="{e(href)}/hand-back">'
            f'{csrf_field(view)}<button type="submit" class="secondary">{view.w("hand_back")}'
            f'</button></form><form method="post" action="{e(href)}/close">{csrf_field(view)}'
            f'<button type="submit" class="secondary">{view.w("close_case")}</button></form>'
            "</div>")
    page = layout(view, conversation, "".join(parts), "handoff")
    if not case.get("agent"):
        return page
    return page.replace("</head>", '<script src="/static/console.js" defer></script></head>', 1)


# ---- the dashboard (console/dashboard.py) -------------------------------------------
def figure(view: View, value: float | None, unit: str) -> str:
    """A dashboard figure as staff read it; "–" when nothing was recorded.

    >>> v = View("en", "/")
    >>> figure(v, 91.0, "count"), figure(v, 0.0625, "percent"), figure(v, None, "count")
    ('91', '6.2 %', '–')
    >>> figure(v, 108.0, "seconds"), figure(v, 750.0, "seconds"), figure(v, 9000.0, "seconds")
    ('108 s', '12.5 min', '2 h 30 min')
    """
    if value is None:
        return "–"
    if unit == PERCENT:
        return f"{value * 100:.1f} %"
    if unit == SECONDS:
        if value < 120:
            return word("seconds_short", view.language, n=round(value))
        if value < 7200:
            return word("minutes_short", view.language, n=f"{value / 60:.1f}")
        return waited(view, value)
    return f"{value:,.0f}"


def _bar(value: float | None, largest: float) -> str:
    """A bar for the week's count against the panel's largest, in tenths (no inline style:
    the policy forbids it)."""
    if not value or largest <= 0:
        return ""
    tenths = max(1, math.ceil(10 * value / largest))
    return f'<span class="bar w{tenths}" aria-hidden="true"></span>'


def _panel(view: View, panel: PanelFigures, heads: list[str]) -> str:
    title = f'<h2 id="p-{e(panel.key)}">{view.w("dash_" + panel.key)}</h2>'
    if panel.error:
        return (f'<section class="panel" aria-labelledby="p-{e(panel.key)}">{title}'
                f'<p class="alert" role="alert">{view.w("dash_panel_failed", detail=panel.error)}'
                "</p></section>")
    if not panel.rows or all(r.week is None and not any(d is not None for d in r.days)
                             for r in panel.rows):
        return (f'<section class="panel" aria-labelledby="p-{e(panel.key)}">{title}'
                f'<p>{view.w("dash_panel_empty")}</p></section>')
    largest = max((r.week or 0.0 for r in panel.rows if r.unit == COUNT), default=0.0)
    rows = []
    for r in panel.rows:
        name = " · ".join(x or "–" for x in r.labels) if r.labels else word("dash_" + r.name,
                                                                             view.language)
        cells = "".join(f'<td data-label="{e(head)}">{e(figure(view, value, r.unit))}</td>'
                        for head, value in zip(heads, r.days, strict=True))
        bar = _bar(r.week, largest) if r.unit == COUNT else ""
        rows.append(f'<tr><th scope="row">{e(name)}</th>{cells}'
                    f'<td data-label="{view.w("dash_week")}"><span class="sum">'
                    f'{e(figure(view, r.week, r.unit))}{bar}</span></td></tr>')
    columns = "".join(f'<th scope="col">{e(head)}</th>' for head in heads)
    return (f'<section class="panel" aria-labelledby="p-{e(panel.key)}">{title}'
            f'<table class="list week"><thead><tr><th scope="col">{view.w("dash_row")}</th>'
            f'{columns}<th scope="col">{view.w("dash_week")}</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></section>')


def dashboard(view: View, week: Week) -> str:
    title = word("dashboard", view.language)
    if week.problem == UNSET:
        return layout(view, title, f'<p class="notice">{view.w("dash_unset")}</p>', "dashboard")
    if week.problem:
        why = view.w("dash_unreachable", source=week.source, detail=week.detail)
        return layout(view, title, f'<p class="alert" role="alert">{why}</p>', "dashboard")
    today = word("dash_today", view.language)
    heads = [d.strftime("%m-%d") for d in week.days]
    heads[-1] = f"{heads[-1]} {today}"
    parts = [f'<p>{view.w("dash_intro", at=week.at.strftime("%H:%M"), source=week.source)}</p>',
             f'<section class="panel" aria-labelledby="p-now"><h2 id="p-now">'
             f'{view.w("dash_now_figures")}</h2>']
    if week.now_error:
        parts.append(f'<p class="alert" role="alert">'
                     f'{view.w("dash_panel_failed", detail=week.now_error)}</p>')
    else:
        parts.append('<dl class="facts">' + "".join(
            f'<dt>{view.w("dash_" + name)}</dt><dd>{e(figure(view, value, COUNT))}</dd>'
            for name, value in week.now.items()) + "</dl>")
    parts.append("</section>")
    parts.extend(_panel(view, panel, heads) for panel in week.panels)
    return layout(view, title, "".join(parts), "dashboard")
