"""The pages' language: Chinese by default, money and dates by Babel for the locale in the center's zone,
and the domains' English refusals said in Chinese (or shown as they are when no translation knows them)."""

from datetime import UTC, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from fabhub.web.i18n import Texts, language

ZONE = ZoneInfo("Asia/Shanghai")


def test_language_money_and_times():
    zh, en = Texts(language(None), ZONE), Texts("en", ZONE)
    assert (zh.lang, Texts(language("fr"), ZONE).lang) == ("zh", "zh")
    assert zh("Live board") == "实时看板" and en("Live board") == "Live board"
    assert zh("a text nobody translated") == "a text nobody translated"
    assert zh.money(Decimal("1234.5")) == "¥1,234.50"
    assert en.money(Decimal("-90")) == "-CN¥90.00"
    moment = datetime(2027, 3, 1, 23, 30, tzinfo=UTC)  # 07:30 the next morning in Jingjiang
    assert zh.when(moment) == "2027-03-02 07:30" == en.when(moment)
    assert zh.percent(0.5432) == "54.3%"


def test_domain_refusals_in_chinese():
    zh, en = Texts("zh", ZONE), Texts("en", ZONE)
    message = "2 live booking(s) of cnc-01 overlap this window: move the window or set cancel_bookings to cancel them"
    assert zh.error(message) == "cnc-01 有 2 个预约与该时段重叠：请调整时段，或勾选“取消冲突的预约”。"
    assert en.error(message) == message
    assert zh.error("invoice FH2027-000001 is issued already") == "发票 FH2027-000001 已开具。"
    assert zh.error("booking 17 has started; check it in or let it finish instead") == "预约 17 已开始，无法取消。"
    assert zh.error("something new went wrong") == "something new went wrong"
    # a slot taken when an offered waiting-list entry is booked (booking.bookings.SlotTaken)
    assert zh.error("cnc-01 is under maintenance then") == "cnc-01 在此时段维护中。"
    assert zh.error("no cnc is free then") == "此时段该类别没有空闲设备。"


def test_rule_problems_name_the_rule_and_say_its_detail():
    zh, en = Texts("zh", ZONE), Texts("en", ZONE)
    message = "bookings start and end on a 30 min grid from midnight"
    assert zh.rule("granularity", message) == "须按时间格开始和结束：预约须按从零点起每 30 分钟的时间格开始和结束。"
    assert en.rule("granularity", message) == message
    assert zh.rule("min_booking", "a booking lasts at least 1.5 h") == "预约时长过短：预约至少 1.5 小时。"


def test_durations_read_as_people_say_them():
    zh, en = Texts("zh", ZONE), Texts("en", ZONE)
    assert [zh.duration(s) for s in (128_820, 2_700, 29, None, float("nan"))] == [
        "35 小时 47 分",
        "45 分",
        "0 分",
        "–",
        "–",
    ]
    assert en.duration(128_820) == "35 h 47 min" and en.duration(3_600) == "1 h 0 min"
