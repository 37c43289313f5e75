"""The console's pages as HTML: no script at all, one stylesheet, every value escaped."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import urlencode

from bot.card_client import LossReport
from console.accounts import ROLES, Account, may
from console.audit import Entry
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
    history = "".join(f'<li><time>{e(h.at)}</time> {e(labels.get(h.status, h.status))}</li>'
                      for h in r.history)
    parts.append(f'<h2>{view.w("history")}</h2><ol class="history">{history}</ol>')
    parts.append(f'<h2>{view.w("notices")}</h2>')
    if not notices:
        parts.append(f'<p>{view.w("no_notices")}</p>')
    for notice in notices:
        attempts = "".join(
            f'<tr><td data-label="{view.w("when")}">{e(a.get("at"))}</td>'
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
            f'<td data-label="{view.w("created")}">{e(a.created_at)}</td><td>'
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
        f'<tr><td data-label="{view.w("when")}"><time>{e(x.at)}</time></td>'
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
