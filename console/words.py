"""What staff read, in both languages; the status labels come from bot/rules/statuses.yml."""

from __future__ import annotations

from bot.rules import statuses

LANGUAGES = ("zh", "en")

WORDS: dict[str, tuple[str, str]] = {  # key: (zh, en)
    "title": ("社保卡挂失 · 工作台", "Card reports · staff console"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "name": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "wrong_login": ("用户名或密码不正确。", "Wrong user name or password."),
    "locked": ("尝试次数过多，请 {seconds} 秒后再试。",
               "Too many failed tries: try again in {seconds} s."),
    "reports": ("挂失记录", "Reports"),
    "handoff": ("人工接待", "Handoff"),
    "dashboard": ("概况", "Dashboard"),
    "accounts": ("账号", "Accounts"),
    "audit": ("审计", "Audit"),
    "not_yet": ("尚未开放。", "Not yet available."),
    "search": ("查找", "Search"),
    "search_hint": ("编号、手机号末几位或提交日期（YYYY-MM-DD）",
                    "Reference, last digits of the phone, or filing date (YYYY-MM-DD)"),
    "status": ("状态", "Status"),
    "city": ("城市", "City"),
    "any": ("全部", "Any"),
    "reference": ("编号", "Reference"),
    "filed_on": ("提交日期", "Filed on"),
    "valid_until": ("临时挂失有效至", "Valid until"),
    "none_found": ("没有符合条件的记录。", "No report matches."),
    "shown": ("显示 {count} 条", "{count} shown"),
    "child_id": ("孩子身份证号", "Child's ID number"),
    "guardian_id": ("监护人身份证号", "Guardian's ID number"),
    "phone": ("手机号", "Phone"),
    "relationship": ("关系", "Relationship"),
    "sms_consent": ("同意短信通知", "Agreed to SMS notices"),
    "personal_data": ("个人信息", "Personal data"),
    "erased": ("已删除", "erased"),
    "kept": ("保留中", "kept"),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "history": ("进度", "History"),
    "notices": ("通知记录", "Notices"),
    "no_notices": ("暂无通知。", "No notice yet."),
    "next_statuses": ("下一步状态", "Next status"),
    "final": ("已是最终状态。", "Final status: nothing comes next."),
    "move_to": ("改为：{label}", "Move to: {label}"),
    "moved": ("已改为 {label}。", "Now {label}."),
    "conflict": ("状态已变化，无法这样修改。", "The status changed meanwhile; not moved."),
    "reveal": ("显示完整手机号（将被记录）", "Reveal phone number (recorded)"),
    "revealed": ("完整手机号（仅显示这一次）：", "Phone number (shown this once):"),
    "read_only": ("您的角色只能查看。", "Your role may only read."),
    "forbidden": ("您的角色无权访问此页面。", "Your role may not open this page."),
    "csrf": ("表单已过期或无效，请返回重试。",
             "The form expired or is not valid: go back and try again."),
    "not_found": ("没有这个编号的记录。", "No report has this reference."),
    "unavailable": ("卡服务暂时不可用，请稍后再试。",
                    "The card service is unavailable; try again."),
    "role": ("角色", "Role"),
    "created": ("创建时间", "Created"),
    "state": ("状态", "State"),
    "enabled": ("启用", "enabled"),
    "disabled": ("已停用", "disabled"),
    "disable": ("停用", "Disable"),
    "enable": ("启用", "Enable"),
    "accounts_hint": ("新建账号：python -m console user add <用户名> --role <角色>",
                      "New accounts: python -m console user add <name> --role <role>"),
    "when": ("时间", "When"),
    "who": ("人员", "Who"),
    "action": ("操作", "Action"),
    "fields": ("字段", "Fields"),
    "detail": ("说明", "Detail"),
    "path": ("途径", "Path"),
    "outcome": ("结果", "Outcome"),
    "signed_in_as": ("{user}（{role}）", "{user} ({role})"),
    "language": ("English", "中文"),  # the link to the other language
    "skip": ("跳到正文", "Skip to content"),
}


def word(key: str, language: str, **values: object) -> str:
    """The words for `key` in `language`, with `values` filled in.

    >>> word("shown", "en", count=3), word("shown", "zh", count=3)
    ('3 shown', '显示 3 条')
    """
    zh, en = WORDS[key]
    text = zh if language == "zh" else en
    return text.format(**values) if values else text


def status_label(status: str, language: str) -> str:
    entry = statuses.TABLE.get(status)
    if entry is None:
        return status
    return entry.label_zh if language == "zh" else entry.label_en
