"""What each event says, in the recipient's language (zh-CN by default, en on request), with the center's
name and its local time. Rendered once, when the event is dispatched: a message sent after an outage still
tells what was true when it happened."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

Language = str  # "zh-CN" or "en"
LANGUAGES = ("zh-CN", "en")


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str
    attachment_name: str | None = None
    attachment_type: str | None = None
    attachment: bytes | None = None


@dataclass(frozen=True, slots=True)
class Voice:
    """The center as it signs its messages."""

    center: str
    zone: ZoneInfo

    def when(self, value: datetime | str, language: Language) -> str:
        moment = (datetime.fromisoformat(value) if isinstance(value, str) else value).astimezone(self.zone)
        if language == "en":
            return moment.strftime("%a %d %b %Y %H:%M")
        weekday = "一二三四五六日"[moment.weekday()]
        return moment.strftime(f"%Y年%m月%d日（周{weekday}）%H:%M")

    def span(self, start: Any, end: Any, language: Language) -> str:
        first, last = self.when(start, language), self.when(end, language)
        same_day = first[: len(first) - 5] == last[: len(last) - 5]
        return f"{first}–{last[-5:]}" if same_day else f"{first} – {last}"

    def sign(self, body: str, language: Language) -> str:
        footer = (
            f"{self.center}（{self.zone.key} 时间）" if language == "zh-CN" else f"{self.center} ({self.zone.key} time)"
        )
        return f"{body}\n\n— {footer}"


def cny(amount: Any, language: Language) -> str:
    value = Decimal(str(amount)).quantize(Decimal("0.01"))
    return f"¥{value:,}" if language == "zh-CN" else f"CNY {value:,}"


def _price(b: dict[str, Any], language: Language) -> str:
    net, gross, subsidy = cny(b["net"], language), cny(b["gross"], language), cny(b["subsidy"], language)
    return f"{net} (subsidy {subsidy} off {gross})" if language == "en" else f"{net}（原价 {gross}，补贴 {subsidy}）"


def booking_confirmed(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    b = payload["booking"]
    when = voice.span(b["start"], b["end"], language)
    if language == "en":
        subject = f"Booking confirmed: {b['device_name']}, {when}"
        lines = [
            f"Your booking {b['id']} of {b['device_name']} is confirmed for {when}.",
            f"Price: {_price(b, language)}.",
            "The calendar file is attached.",
        ]
    else:
        subject = f"预约已确认：{b['device_name']}，{when}"
        lines = [
            f"您的预约 {b['id']}（{b['device_name']}）已确认，时间 {when}。",
            f"费用：{_price(b, language)}。",
            "附件为日历文件。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def booking_changed(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    b, was = payload["booking"], payload["before"]
    when, before = voice.span(b["start"], b["end"], language), voice.span(was["start"], was["end"], language)
    if language == "en":
        subject = f"Booking changed: {b['device_name']}, {when}"
        lines = [
            f"Your booking {b['id']} was moved from {was['device_name']}, {before}",
            f"to {b['device_name']}, {when}.",
            f"Price now: {_price(b, language)}; before {cny(was['net'], language)}.",
            "The updated calendar file is attached.",
        ]
    else:
        subject = f"预约已变更：{b['device_name']}，{when}"
        lines = [
            f"您的预约 {b['id']} 已由 {was['device_name']}，{before}",
            f"改为 {b['device_name']}，{when}。",
            f"现费用：{_price(b, language)}；变更前 {cny(was['net'], language)}。",
            "附件为更新后的日历文件。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def series_confirmed(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    made, skipped = payload["series"]["bookings"], payload["series"]["skipped"]
    device, net = made[0]["device_name"], sum(Decimal(str(b["net"])) for b in made)
    slots = [f"  {b['id']}: {voice.span(b['start'], b['end'], language)}" for b in made]
    gaps = [f"  {voice.span(s['start'], s['end'], language)}: {s['reason']}" for s in skipped]
    if language == "en":
        subject = f"Recurring booking confirmed: {device}, {len(made)} times"
        lines = [f"Your {len(made)} bookings of {device} are confirmed ({cny(net, language)} net):", *slots]
        if gaps:
            lines += ["Not booked:", *gaps]
        lines.append("The calendar file with every occurrence is attached.")
    else:
        subject = f"系列预约已确认：{device}，共 {len(made)} 次"
        lines = [f"您的 {len(made)} 次 {device} 预约已确认（合计 {cny(net, language)}）：", *slots]
        if gaps:
            lines += ["未预约的时段：", *gaps]
        lines.append("附件为包含全部时段的日历文件。")
    return Message(subject, voice.sign("\n".join(lines), language))


def waiting_offered(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    o = payload["offer"]
    when, until = voice.span(o["start"], o["end"], language), voice.when(o["offer_expires_at"], language)
    if language == "en":
        subject = f"A slot you wait for is free: {o['device_name']}, {when}"
        lines = [
            f"{o['device_name']} is free for {when}, as you asked (waiting-list entry {o['id']}).",
            f"It is held for you until {until}: accept it under My bookings, or it passes to the next waiter.",
        ]
    else:
        subject = f"候补时段已空出：{o['device_name']}，{when}"
        lines = [
            f"您候补的 {o['device_name']}（{when}）已空出（候补 {o['id']}）。",
            f"为您保留至 {until}：请在“我的预约”中确认，逾期将顺延给下一位候补。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def _with_fee(
    payload: dict[str, Any], voice: Voice, language: Language, fee_en: str, fee_zh: str
) -> tuple[dict[str, Any], str, str]:
    """The booking, its slot in words, and what its fee means."""
    b = payload["booking"]
    fee = Decimal(str(b["fee"]))
    if language == "en":
        charge = f"A {fee_en} of {cny(fee, language)} applies." if fee > 0 else "No fee is charged."
    else:
        charge = f"将收取{fee_zh} {cny(fee, language)}。" if fee > 0 else "不收取费用。"
    return b, voice.span(b["start"], b["end"], language), charge


def booking_cancelled(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    b, when, charge = _with_fee(payload, voice, language, "cancellation fee", "取消费")
    if language == "en":
        subject = f"Booking cancelled: {b['device_name']}, {when}"
        why = f" by the center for maintenance ({payload['reason']})" if payload["by_center"] else ""
        lines = [f"Your booking {b['id']} of {b['device_name']} for {when} was cancelled{why}.", charge]
    else:
        subject = f"预约已取消：{b['device_name']}，{when}"
        why = f"（中心设备维护：{payload['reason']}）" if payload["by_center"] else ""
        lines = [f"您的预约 {b['id']}（{b['device_name']}，{when}）已取消{why}。", charge]
    return Message(subject, voice.sign("\n".join(lines), language))


def booking_ended(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    """A receipt of ending early: when the machine was freed and what the billing basis will charge."""
    b, billing = payload["booking"], payload["billing"]
    booked_end = b["booked_end"] or b["end"]
    when = voice.span(b["start"], booked_end, language)
    freed, booked = voice.when(b["end"], language)[-5:], voice.when(booked_end, language)[-5:]
    share = f"{Decimal(str(billing['minimum_share'])):.0%}"
    metered = billing["basis"] == "metered"  # booked and overage both charge the booked slot
    if language == "en":
        charged = (
            f"the measured running time, at least {share} of the booked time"
            if metered
            else f"the booked time until {booked}"
        )
        subject = f"Booking ended early: {b['device_name']}, {when}"
        lines = [
            f"Your booking {b['id']} of {b['device_name']} ({when}) was ended early; the machine is free for "
            f"others from {freed}.",
            f"Charged: {charged}.",
        ]
    else:
        charged = f"按实际运行时间计费，不少于预约时长的 {share}" if metered else f"按预约时段计费（至 {booked}）"
        subject = f"预约已提前结束：{b['device_name']}，{when}"
        lines = [
            f"您的预约 {b['id']}（{b['device_name']}，{when}）已提前结束，设备自 {freed} 起可供他人预约。",
            f"{charged}。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def booking_no_show(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    b, when, charge = _with_fee(payload, voice, language, "no-show fee", "爽约费")
    if language == "en":
        subject = f"Missed booking: {b['device_name']}, {when}"
        lines = [
            f"The machine did not run in the first minutes of your booking {b['id']} ({when}): it is released "
            "as a no-show and free for others.",
            charge,
            "If you were there, please tell the technicians.",
        ]
    else:
        subject = f"预约未使用：{b['device_name']}，{when}"
        lines = [
            f"您的预约 {b['id']}（{when}）开始后设备未运行，已按爽约释放，设备可供他人预约。",
            charge,
            "如您已到场，请联系技术人员。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def qualification_expiring(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    q = payload["qualification"]
    day = date.fromisoformat(str(q["expires_on"]))
    if language == "en":
        subject = f"Your qualification for {q['class_name']} ends on {day:%d %b %Y}"
        lines = [
            f"Your qualification for {q['class_name']} ends on {day:%d %b %Y}; bookings after it are refused.",
            "Ask a technician to renew it.",
        ]
    else:
        subject = f"{q['class_name_zh']}使用资格将于 {day:%Y年%m月%d日} 到期"
        lines = [
            f"您的{q['class_name_zh']}使用资格将于 {day:%Y年%m月%d日} 到期，到期后的预约将无法提交。",
            "请联系技术人员续期。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def registration_submitted(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    r = payload["registration"]
    if language == "en":
        subject = f"Confirm your email to register {r['organization_name']}"
        lines = [
            f"Someone, we hope you, registered {r['organization_name']} ({r['uscc']}) with this email.",
            f"Confirm it within 48 hours: {payload['confirm_url']}",
            "The center then reviews the registration; you will hear of its decision. If it was not you, "
            "do nothing: nothing is created without the confirmation.",
        ]
    else:
        subject = f"请确认邮箱以完成 {r['organization_name']} 的注册"
        lines = [
            f"有人（希望是您）用本邮箱注册了 {r['organization_name']}（{r['uscc']}）。",
            f"请在 48 小时内点击确认：{payload['confirm_url']}",
            "确认后中心将审核注册，审核结果会通知您。如非本人操作，请忽略本邮件：未确认的注册不会生效。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def registration_decided(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    r = payload["registration"]
    approved = r["status"] == "approved"
    if language == "en":
        subject = f"Registration of {r['organization_name']} " + ("approved" if approved else "refused")
        lines = (
            [f"{r['organization_name']} is registered: log in with {r['contact_email']} and the password you chose."]
            if approved
            else [f"The center refused the registration of {r['organization_name']}: {r['reason']}"]
        )
    else:
        subject = f"{r['organization_name']} 注册" + ("已通过" if approved else "未通过")
        lines = (
            [f"{r['organization_name']} 已注册成功：请用 {r['contact_email']} 和注册时设置的密码登录。"]
            if approved
            else [f"中心未通过 {r['organization_name']} 的注册，原因：{r['reason']}"]
        )
    return Message(subject, voice.sign("\n".join(lines), language))


def booking_reminder(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    b, lead = payload["booking"], int(payload["lead_minutes"])
    when = voice.span(b["start"], b["end"], language)
    if language == "en":
        ahead = f"{lead // 60} h" if lead % 60 == 0 else f"{lead} min"
        subject = f"Reminder: {b['device_name']} in {ahead}"
        lines = [f"Your booking {b['id']} of {b['device_name']} starts {when}.", "Please check in on time."]
    else:
        ahead = f"{lead // 60} 小时" if lead % 60 == 0 else f"{lead} 分钟"
        subject = f"预约提醒：{ahead}后使用 {b['device_name']}"
        lines = [f"您的预约 {b['id']}（{b['device_name']}）将于 {when} 开始。", "请按时签到。"]
    return Message(subject, voice.sign("\n".join(lines), language))


def invoice_issued(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    i = payload["invoice"]
    month = str(i["month"])[:7]
    if language == "en":
        subject = f"Invoice {i['number']} for {month}"
        lines = [
            f"Invoice {i['number']} for {i['organization_name']}, {month}, was issued: {cny(i['total'], language)}"
            f" including VAT {cny(i['vat'], language)}.",
            "It can be downloaded as PDF from FabHub's finance pages.",
        ]
    else:
        subject = f"发票 {i['number']}（{month}）已开具"
        lines = [
            f"{i['organization_name']} {month} 的账单 {i['number']} 已开具，合计 {cny(i['total'], language)}"
            f"（含增值税 {cny(i['vat'], language)}）。",
            "可在 FabHub 财务页面下载 PDF。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


def device_down(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    d = payload["down"]
    at = voice.when(d["down_at"], language)
    if language == "en":
        subject = f"{d['device_name']} is down during a booking"
        body = (
            f"{d['device_name']} ({d['device_id']}) went down at {at} during booking {d['booking_id']} of "
            f"{d['organization_name']} ({voice.span(d['start'], d['end'], language)})."
        )
    else:
        subject = f"设备故障：{d['device_name']}（预约使用中）"
        body = (
            f"{d['device_name']}（{d['device_id']}）于 {at} 停机，当前预约 {d['booking_id']}"
            f"（{d['organization_name']}，{voice.span(d['start'], d['end'], language)}）。"
        )
    return Message(subject, voice.sign(body, language))


# -- user.invited: an admin invited a person by email -------------------------------------------------------


def user_invited(payload: dict[str, Any], voice: Voice, language: Language) -> Message:
    u, until = payload["user"], voice.when(payload["expires_at"], language)
    if language == "en":
        subject = f"You are invited to {voice.center}"
        lines = [
            f"Hello {u['name']},",
            f"{payload['invited_by']} invited you to FabHub at {voice.center}; you log in as {u['email']}.",
            f"Choose your password here before {until}: {payload['link']}",
            "The link works once. If you did not expect this, ignore this email.",
        ]
    else:
        subject = f"邀请您加入 {voice.center}"
        lines = [
            f"{u['name']}，您好：",
            f"{payload['invited_by']} 邀请您使用 {voice.center} 的 FabHub 平台，登录邮箱为 {u['email']}。",
            f"请在 {until} 前打开以下链接设置密码：{payload['link']}",
            "链接仅可使用一次。如非本人，请忽略本邮件。",
        ]
    return Message(subject, voice.sign("\n".join(lines), language))


RENDER = {
    "booking.confirmed": booking_confirmed,
    "booking.series_confirmed": series_confirmed,
    "booking.changed": booking_changed,
    "booking.cancelled": booking_cancelled,
    "booking.ended": booking_ended,
    "booking.no_show": booking_no_show,
    "booking.reminder": booking_reminder,
    "invoice.issued": invoice_issued,
    "waiting.offered": waiting_offered,
    "qualification.expiring": qualification_expiring,
    "registration.submitted": registration_submitted,
    "registration.approved": registration_decided,
    "registration.refused": registration_decided,
    "device.down": device_down,
    "user.invited": user_invited,
}
