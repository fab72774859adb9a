"""A machine report's underlying figures as CSV and XLSX (oee.exports writes the sheets), and the labels the
sheets, the PDF and the pages share, in Chinese (the default) or English. One report is one table of
section, figure, value and unit; a comparison one row per booking."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

from oee.exports import COUNT, MONEY, Column, Sheet, to_csv, to_xlsx
from oee.report import Comparison, Report

Lang = Literal["zh-CN", "en"]
SHARE = "0.0%"
DECIMALS = "0.00##"

# English -> Chinese; English is the key, so a missing one shows English.
ZH = {
    "Machine report": "设备使用报告", "Comparison": "预约对比", "Booking": "预约", "Billing": "计费", "Times": "时间",
    "OEE": "设备综合效率（OEE）", "Six big losses": "六大损失", "Parts": "产量", "Cycle times": "加工节拍",
    "Energy": "能耗", "section": "分类", "figure": "指标", "value": "数值", "unit": "单位",
    "booking": "预约编号", "organization": "客户", "device": "设备", "class": "设备类别", "start": "开始",
    "end": "结束", "reference": "项目/采购单号", "basis": "计费方式", "hourly rate": "小时费率",
    "charged hours": "计费时长", "charge": "费用", "subsidy": "补贴", "total": "应付金额",
    "invoiced": "已开票", "estimate": "预估（未开票）", "planned": "计划时间", "running": "运行", "setup": "调试",
    "idle": "空闲", "down": "故障", "maintenance": "维护", "offline": "离线", "micro-stops": "短暂停机",
    "overrun": "超时运行", "availability": "可用率", "performance": "性能率", "quality": "良品率",
    "oee": "OEE", "ideal cycle": "理想节拍", "breakdowns": "故障停机", "setup and adjustments": "调试与调整",
    "small stops": "短暂停机", "reduced speed": "速度损失", "rejects": "废品损失", "parts total": "总产量",
    "parts good": "良品", "scrap": "废品", "scrap share": "废品率", "parts measured": "计量件数",
    "mean cycle": "平均节拍", "median cycle": "节拍中位数", "shortest cycle": "最短节拍", "longest cycle": "最长节拍",
    "energy": "电能", "idle energy": "空闲电能", "energy per good part": "单件良品电耗", "CO2": "二氧化碳排放",
    "carbon factor": "排放因子", "booked": "按预约时长", "metered": "按实际运行时长", "overage": "预约时长加超时",
    "h": "小时", "s": "秒", "CNY": "元", "kWh": "kWh", "kWh/part": "kWh/件", "kg": "kg", "parts": "件",
    "kg CO2/kWh": "kg CO₂/kWh", "yes": "是", "no": "否", "Figures": "指标", "Bookings": "预约",
    "mean cycle s": "平均节拍（秒）", "median cycle s": "节拍中位数（秒）", "energy kWh": "电能（kWh）",
    "kWh per good part": "单件良品电耗（kWh）", "CO2 kg": "二氧化碳（kg）",
}  # fmt: skip


def label(text: str, lang: Lang) -> str:
    return ZH.get(text, text) if lang == "zh-CN" else text


def carbon_note(report: Report, lang: Lang) -> str | None:
    """How the CO2 was computed: "按 0.5703 kg CO₂/kWh（生态环境部 2022 年全国电网平均排放因子）"."""
    e = report.energy
    if e.carbon_factor is None:
        return None
    source = e.carbon_source or ""
    if e.carbon_year and str(e.carbon_year) not in source:  # the source usually names its year itself
        source += f" {e.carbon_year}"
    return (
        f"按 {e.carbon_factor} kg CO₂/kWh（{source}）"
        if lang == "zh-CN"
        else f"at {e.carbon_factor} kg CO₂/kWh ({source})"
    )


def figures(report: Report) -> list[tuple[str, str, Any, str]]:
    """(section, figure, value, unit) in English; times in hours, shares as fractions (unit %), money Decimal."""
    b, t, o, loss, p = report.billing, report.times, report.oee, report.losses, report.parts
    e, c = report.energy, report.cycles
    h = 1 / 3600
    sections: dict[str, list[tuple[str, Any, str]]] = {
        "Billing": [
            ("basis", b.basis, ""), ("hourly rate", b.hourly_rate, "CNY"), ("charged hours", b.hours, "h"),
            ("charge", b.charge, "CNY"), ("subsidy", b.subsidy, "CNY"), ("total", b.total, "CNY"),
            ("invoiced", "yes" if b.invoiced else "estimate", ""),
        ],
        "Times": [
            (name, getattr(t, f"{key}_s") * h, "h")
            for key, name in (("planned", "planned"), ("running", "running"), ("setup", "setup"), ("idle", "idle"),
                              ("down", "down"), ("maintenance", "maintenance"), ("offline", "offline"),
                              ("micro_stop", "micro-stops"), ("overrun", "overrun"))
        ],
        "OEE": [
            ("availability", o.availability, "%"), ("performance", o.performance, "%"), ("quality", o.quality, "%"),
            ("oee", o.oee, "%"), ("ideal cycle", o.ideal_cycle_s, "s"),
        ],
        "Six big losses": [
            ("breakdowns", loss.breakdowns_h, "h"), ("setup and adjustments", loss.setup_h, "h"),
            ("small stops", loss.small_stops_h, "h"), ("reduced speed", loss.reduced_speed_h, "h"),
            ("rejects", loss.rejects_h, "h"),
        ],
        "Parts": [("parts total", p.total, "parts"), ("parts good", p.good, "parts"), ("scrap", p.scrap, "parts")],
        "Cycle times": [] if c is None else [
            ("parts measured", c.parts_measured, "parts"), ("mean cycle", c.mean_s, "s"),
            ("median cycle", c.median_s, "s"), ("shortest cycle", c.min_s, "s"), ("longest cycle", c.max_s, "s"),
        ],
        "Energy": [
            ("energy", e.kwh, "kWh"), ("idle energy", e.idle_kwh, "kWh"),
            ("energy per good part", e.kwh_per_good_part, "kWh/part"), ("CO2", e.co2_kg, "kg"),
            ("carbon factor", e.carbon_factor, "kg CO2/kWh"),
        ],
    }  # fmt: skip
    return [(section, figure, value, unit) for section, rows in sections.items() for figure, value, unit in rows]


def _report_sheet(report: Report, zone: ZoneInfo, lang: Lang) -> Sheet:
    s = report.slot
    when = f"{s.start.astimezone(zone):%Y-%m-%d %H:%M}–{s.end.astimezone(zone):%H:%M} ({zone.key})"
    heading = [
        f"{label('Machine report', lang)} · {label('booking', lang)} {s.booking_id}",
        f"{s.organization_name} · {s.device_name} · {when}",
    ]
    note = carbon_note(report, lang)
    if note:
        heading.append(note)
    columns = [Column(label(t, lang), None, w) for t, w in (("section", 14), ("figure", 22))]
    columns += [Column(label("value", lang), DECIMALS, 14), Column(label("unit", lang), None, 10)]
    sheet = Sheet(label("Figures", lang), heading, columns)
    for section, figure, value, unit in figures(report):
        shown = label(value, lang) if isinstance(value, str) else _cell(value, unit)
        sheet.rows.append([label(section, lang), label(figure, lang), shown, label(unit, lang)])
    return sheet


def _cell(value: Any, unit: str) -> Any:
    """Shares as percentages (the unit column says %), hours to four places, other figures as measured."""
    if value is None or isinstance(value, Decimal):
        return value
    if unit == "%":
        return round(value * 100, 2)
    if unit == "h":
        return round(value, 4)
    return value


COMPARED = [
    ("booking", COUNT), ("device", None), ("class", None), ("start", None), ("end", None), ("parts total", COUNT),
    ("parts good", COUNT), ("scrap", COUNT), ("scrap share", SHARE), ("mean cycle s", DECIMALS),
    ("median cycle s", DECIMALS), ("availability", SHARE), ("performance", SHARE), ("quality", SHARE),
    ("oee", SHARE), ("energy kWh", DECIMALS), ("kWh per good part", DECIMALS), ("CO2 kg", MONEY),
]  # fmt: skip


def _comparison_sheet(comparison: Comparison, zone: ZoneInfo, lang: Lang) -> Sheet:
    columns = [Column(label(title, lang), fmt, 14) for title, fmt in COMPARED]
    sheet = Sheet(label("Bookings", lang), [label("Comparison", lang)], columns)
    for b in comparison.bookings:
        sheet.rows.append(
            [
                b.booking_id, b.device_name, b.class_name, b.start.astimezone(zone).replace(tzinfo=None),
                b.end.astimezone(zone).replace(tzinfo=None), b.parts_total, b.parts_good, b.scrap, b.scrap_share,
                b.mean_cycle_s, b.median_cycle_s, b.availability, b.performance, b.quality, b.oee, b.energy_kwh,
                b.kwh_per_good_part, b.co2_kg,
            ]
        )  # fmt: skip
    return sheet


async def report_file(report: Report, fmt: Literal["csv", "xlsx"], zone: ZoneInfo, lang: Lang) -> bytes:
    sheet = _report_sheet(report, zone, lang)
    return to_csv(sheet) if fmt == "csv" else await asyncio.to_thread(to_xlsx, sheet)


async def comparison_file(comparison: Comparison, fmt: Literal["csv", "xlsx"], zone: ZoneInfo, lang: Lang) -> bytes:
    sheet = _comparison_sheet(comparison, zone, lang)
    return to_csv(sheet) if fmt == "csv" else await asyncio.to_thread(to_xlsx, sheet)
