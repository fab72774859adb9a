"""A machine report as a PDF for the SME: Chinese by default (English on request), the CJK font embedded
(oee.exports registers Debian's fonts-wqy-zenhei), times in the center's zone. The figures are the same
table the CSV holds (oee.report_sheets), followed by the state timeline, the cycle-time distribution, the
programs run, the alarms and the down intervals with their reasons."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from reportlab.lib import colors
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, Spacer, Table, TableStyle

from oee.exports import CJK_FONT, build_a4, cjk_font, footer
from oee.report import Report
from oee.report_sheets import Lang, carbon_note, figures, label

ZH = {
    "Machine report": "设备使用报告", "State timeline": "状态时间线", "Cycle-time distribution": "节拍分布",
    "Programs run": "运行程序", "Alarms": "报警", "Down time": "故障停机", "state": "状态", "from": "从", "to": "至",
    "duration": "时长", "program": "程序", "runs": "启动次数", "running": "运行", "parts": "件数", "text": "内容",
    "cleared": "解除", "reason": "原因", "unassigned": "未指定", "cycle": "节拍", "still on": "未解除",
    "Customer": "客户", "Device": "设备", "Slot": "预约时段", "Booking": "预约编号", "Frozen at": "结果冻结于",
    "Nothing recorded.": "无记录。", "idle": "空闲", "setup": "调试", "down": "故障", "maintenance": "维护",
    "offline": "离线",
}  # fmt: skip


def _t(text: str, lang: Lang) -> str:
    return ZH.get(text, label(text, lang)) if lang == "zh-CN" else text


def _shown(value: Any, unit: str, lang: Lang) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return label(value, lang)
    if unit == "%":
        return f"{value * 100:.1f} %"
    if isinstance(value, Decimal):
        return f"{value:,.2f}" if unit == "CNY" else format(value, "f")
    if unit == "parts":
        return f"{value:,.0f}"
    if unit == "kWh/part":
        return f"{value:,.3f}"
    return f"{value:,.2f}" if unit in ("h", "kWh") else f"{value:,.4g}"


def _duration(seconds: float, lang: Lang) -> str:
    hours, minutes = divmod(round(seconds / 60), 60)
    if lang == "zh-CN":
        return f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def _render(report: Report, center_name: str, zone: ZoneInfo, lang: Lang, font_path: Path) -> bytes:
    font = cjk_font(font_path)

    def style(name: str, size: float, **extra: Any) -> ParagraphStyle:
        return ParagraphStyle(name, fontName=font, fontSize=size, leading=size * 1.35, wordWrap="CJK", **extra)

    body, heading = style("body", 9), style("heading", 11, spaceBefore=6, spaceAfter=3)

    def p(text: Any, st: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(str(text)), st)

    def table(rows: list[list[Any]], widths: list[float]) -> Table:
        t = Table(rows, colWidths=[w * mm for w in widths], repeatRows=1)
        t.setStyle(
            TableStyle(
                [
                    ("FONT", (0, 0), (-1, -1), font, 8.5),
                    ("BACKGROUND", (0, 0), (-1, 0), colors.Color(0.9, 0.9, 0.9)),
                    ("LINEBELOW", (0, 1), (-1, -1), 0.25, colors.lightgrey),
                    ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ]
            )
        )
        return t

    def when(moment: Any) -> str:
        return "–" if moment is None else f"{moment.astimezone(zone):%Y-%m-%d %H:%M}"

    s = report.slot
    title = _t("Machine report", lang)
    kind = (s.class_name_zh or s.class_name) if lang == "zh-CN" else s.class_name
    facts: list[list[Any]] = [
        [_t("Booking", lang), str(s.booking_id)],
        [_t("Customer", lang), p(s.organization_name)],
        [_t("Device", lang), p(f"{s.device_name} ({kind})")],
        [_t("Slot", lang), f"{when(s.start)}–{s.end.astimezone(zone):%H:%M} ({zone.key})"],
        [_t("Frozen at", lang), when(report.frozen_at)],
    ]
    story: list[Any] = [p(center_name, style("center", 14)), p(title, style("title", 12)), Spacer(0, 3 * mm)]
    story.append(table(facts, [40, 134]))
    rows: list[list[Any]] = [[label(c, lang) for c in ("section", "figure", "value", "unit")]]
    for section, figure, value, unit in figures(report):
        rows.append([label(section, lang), label(figure, lang), _shown(value, unit, lang), label(unit, lang)])
    story += [Spacer(0, 4 * mm), table(rows, [40, 60, 44, 30])]
    note = carbon_note(report, lang)
    if note:
        story.append(p(f"CO₂: {note}"))

    def part(name: str, header: list[str], lines: list[list[Any]], widths: list[float]) -> None:
        story.append(p(_t(name, lang), heading))
        if lines:
            story.append(table([[_t(h, lang) for h in header], *lines], widths))
        else:
            story.append(p(_t("Nothing recorded.", lang)))

    if report.timeline is not None:
        spans = [[_t(x.state, lang), when(x.start), when(x.end), _duration(x.seconds, lang)] for x in report.timeline]
        part("State timeline", ["state", "from", "to", "duration"], spans, [30, 48, 48, 48])
    if report.cycles is not None:
        bins = [[f"{b.from_s:.1f}–{b.to_s:.1f} s", f"{b.parts:,.0f}"] for b in report.cycles.bins]
        part("Cycle-time distribution", ["cycle", "parts"], bins, [60, 40])
    if report.programs is not None:
        progs = [[p(x.name), _duration(x.running_s, lang), f"{x.parts:,.0f}", str(x.runs)] for x in report.programs]
        part("Programs run", ["program", "running", "parts", "runs"], progs, [70, 40, 30, 30])
    if report.alarms is not None:
        alarms = [[when(a.at), p(a.text), when(a.until) if a.until else _t("still on", lang)] for a in report.alarms]
        part("Alarms", ["from", "text", "cleared"], alarms, [40, 94, 40])
    if report.downtime is not None:
        downs = []
        for d in report.downtime:
            reason = (d.reason_name_zh if lang == "zh-CN" else d.reason_name) or _t("unassigned", lang)
            downs.append([when(d.start), when(d.end), _duration(d.seconds, lang), p(f"{reason} {d.note or ''}")])
        part("Down time", ["from", "to", "duration", "reason"], downs, [40, 40, 30, 64])

    def decorate(canvas: Any, doc: Any) -> None:
        canvas.saveState()
        footer(canvas, doc, font, f"{center_name} · {title} {s.booking_id}")
        canvas.restoreState()

    return build_a4(story, decorate, title=f"{title} {s.booking_id}", author=center_name, subject=s.organization_name)


async def report_pdf(
    report: Report, center_name: str, zone: ZoneInfo, lang: Lang = "zh-CN", *, font: Path = CJK_FONT
) -> bytes:
    """Raises exports.FontMissing without the CJK font."""
    return await asyncio.to_thread(_render, report, center_name, zone, lang, font)
