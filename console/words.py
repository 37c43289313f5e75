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

# The live handoff pages (console/handoff.py).
WORDS.update({
    "queue_waiting": ("等待接待", "Waiting"),
    "queue_taken": ("接待中", "Being answered"),
    "queue_empty": ("没有等待的对话。", "Nobody is waiting."),
    "queue_none_taken": ("没有正在接待的对话。", "No conversation is being answered."),
    "queue_refresh": ("刷新", "Refresh"),
    "staffed_now": ("现在是值班时间。", "Staffed hours now."),
    "unstaffed_now": ("现在不在值班时间：对话会等到有人接待。",
                      "Outside staffed hours: conversations wait for someone to take them."),
    "conversation": ("对话", "Conversation"),
    "channel": ("渠道", "Channel"),
    "case_language": ("语言", "Language"),
    "reason": ("原因", "Reason"),
    "reason_asked": ("要求人工", "asked for a person"),
    "reason_failed_tries": ("连续三次未理解", "three tries not understood"),
    "waited": ("已等待", "Waiting for"),
    "after_hours": ("非值班时间", "after hours"),
    "agent": ("接待人", "Agent"),
    "take": ("接待", "Take"),
    "open_case": ("查看", "Open"),
    "transcript": ("之前的对话（已遮盖）", "Before the request (masked)"),
    "no_transcript": ("没有之前的对话。", "Nothing was said before."),
    "live": ("接待后的对话", "Since it was taken"),
    "from_guardian": ("家长", "Guardian"),
    "from_assistant": ("助手", "Assistant"),
    "from_agent": ("工作人员", "Staff"),
    "buttons": ("按钮：", "Buttons: "),
    "chose": ("点选：", "Chose: "),
    "reply": ("回复", "Reply"),
    "send": ("发送", "Send"),
    "hand_back": ("交还给助手", "Hand back to the assistant"),
    "close_case": ("结束对话", "Close"),
    "held_by": ("{agent} 正在接待。", "{agent} is answering."),
    "held_by_you": ("您正在接待这个对话。", "You are answering this conversation."),
    "not_taken_yet": ("还没有人接待。", "Nobody has taken it yet."),
    "held_elsewhere": ("另一位工作人员正在接待这个对话。",
                       "Another staff member holds this conversation."),
    "taken_by_other": ("{agent} 已先接待了这个对话。", "{agent} took this conversation first."),
    "not_queued": ("这个对话已不在队列中（已交还、已结束或已过期）。",
                   "This conversation is no longer queued (handed back, closed or expired)."),
    "handed_back": ("已交还给助手。", "Handed back to the assistant."),
    "closed": ("对话已结束。", "Conversation closed."),
    "reply_invalid": ("回复需要 1 到 2000 个字。", "A reply needs 1 to 2,000 characters."),
    "reply_outcome_seen": ("已送达。", "Delivered."),
    "reply_outcome_queued": ("已保存，家长下次发消息时会看到。",
                             "Kept: the guardian gets it with their next message."),
    "reply_outcome_other": ("没有送达（{outcome}），请稍后再发。",
                            "Not delivered ({outcome}); send it again later."),
    "live_stopped": ("实时更新已停止：{why}", "Live updates stopped: {why}"),
    "live_retrying": ("连接中断，正在重试…", "Connection lost, retrying…"),
    "handoff_unavailable": ("人工接待服务暂时不可用，请稍后再试。",
                            "The handoff service is unavailable; try again."),
    "handoff_not_configured": ("人工接待未配置：请设置 HANDOFF_TOKEN（与 Rasa 相同）。",
                               "Handoff is not configured: set HANDOFF_TOKEN (Rasa's value)."),
    "seconds_short": ("{n} 秒", "{n} s"),
    "minutes_short": ("{n} 分钟", "{n} min"),
    "hours_short": ("{h} 小时 {m} 分钟", "{h} h {m} min"),
})

# The dashboard (console/dashboard.py): panel titles, row names, and what is wrong when
# Prometheus cannot answer.
WORDS.update({
    "dash_intro": ("近 7 天（北京时间，今天截至 {at}），数据来自 Prometheus（{source}）。"
                        "“–”表示当天没有记录。",
                        "The last 7 days (China time, today until {at}), from Prometheus "
                        "({source}). \u201c–\u201d: nothing recorded that day."),
    "dash_unset": ("概况的数据来自 Prometheus，但没有设置 PROMETHEUS_URL。请在 .env 或控制台的"
                        "环境中把它设为 Prometheus 的地址（例如 http://127.0.0.1:9090），然后重启控制台。",
                        "The dashboard reads its figures from Prometheus, and PROMETHEUS_URL is "
                        "not set. Set it to Prometheus's address (for example "
                        "http://127.0.0.1:9090) in .env or the console's environment, then "
                        "restart the console."),
    "dash_unreachable": ("无法连接 Prometheus（{source}）：{detail}。请确认它在运行，"
                              "并检查 PROMETHEUS_URL。",
                              "Prometheus at {source} cannot be reached: {detail}. Check that it "
                              "runs and that PROMETHEUS_URL is right."),
    "dash_panel_failed": ("这一栏读取失败：{detail}", "This panel could not be read: {detail}"),
    "dash_panel_empty": ("这 7 天没有记录。", "Nothing recorded in these 7 days."),
    "dash_now_figures": ("当前", "Now"),
    "dash_outbox_backlog": ("待发送的通知和删除", "Notices and erasures waiting in the outbox"),
    "dash_outbox_due": ("其中已到期", "of which already due"),
    "dash_turns_by_channel": ("对话轮次（按渠道）", "Turns by channel"),
    "dash_turns_by_language": ("对话轮次（按语言）", "Turns by language"),
    "dash_fallbacks": ("未能理解", "Not understood (fallback)"),
    "dash_filings": ("提交的挂失", "Filings"),
    "dash_drop_off": ("表单中途离开（按问题：提问数减已填数）",
                 "Form drop-off by slot (asked minus filled)"),
    "dash_notices": ("通知（按途径和结果）", "Notices by path and outcome"),
    "dash_handoff_wait": ("转人工等待时间", "Handoff waiting time"),
    "dash_server_errors": ("服务器错误（5xx）", "Server errors (5xx)"),
    "dash_row": ("项目", "Row"),
    "dash_total": ("合计", "total"),
    "dash_fallback_count": ("未能理解的消息", "messages not understood"),
    "dash_fallback_rate": ("占全部轮次", "share of turns"),
    "dash_handoffs_taken": ("已接待", "taken by a person"),
    "dash_median": ("中位数", "median"),
    "dash_p90": ("90% 在此之内", "90th percentile"),
    "dash_week": ("7 天", "7 days"),
    "dash_today": ("今天", "today"),
})



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
