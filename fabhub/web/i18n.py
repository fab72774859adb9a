"""Chinese first, English on request: the page texts, and CNY amounts, dates and times formatted by Babel
for the reader's locale, always in the center's time zone."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_percent

LANGUAGES = {"zh": "zh_CN", "en": "en_GB"}
DEFAULT = "zh"

# English text -> Chinese. English is the key, so a missing translation shows English, never a blank.
ZH: dict[str, str] = {
    "FabHub": "FabHub 共享制造平台",
    "Live board": "实时看板",
    "Book a machine": "预约设备",
    "My bookings": "我的预约",
    "Finance": "财务",
    "Receivables": "应收账款",
    "As of": "截至",
    "Show": "显示",
    "Open amounts by days since the invoice was issued.": "未收金额，按开票后天数分段。",
    "Nothing open.": "没有未收款项。",
    "Payments": "收款",
    "Record payment": "登记收款",
    "Recorded a payment of {amount} to {number}.": "已记录付款 {amount} 到 {number}。",
    # The finance page's month, its confirmations and what its actions did (fabhub/web/finance_pages.py).
    "Bank statements": "银行流水",
    "Billed hours": "计费小时",
    "Before subsidy": "补贴前金额",
    "Amount due": "应付金额",
    "Invoice": "发票",
    "not drafted yet": "尚未生成草稿",
    "What the month bills each customer: an issued invoice as it stands, otherwise what drafting now would bill "
    "(finished bookings, their measured usage, fees, subsidies within the caps).": (
        "各客户本月的计费：已开具的发票按其金额；其余按现在生成草稿将计的金额"
        "（已结束的预约、实测用量、费用，以及年度上限内的补贴）。"
    ),
    "The month is not over yet: once it is, this shows what it bills. The usage export lists the bookings so far.": (
        "本月尚未结束：结束后这里显示各客户的计费。使用情况导出中列有截至目前的预约。"
    ),
    "Issue all drafts": "开具全部草稿",
    "Issue invoices": "开具发票",
    "Issuing cannot be undone: each invoice gets the next number of the year and never changes; only a credit "
    "note corrects it.": "开具后不可撤销：每张发票取得本年度的下一个编号，此后不再更改，只能通过红字冲销更正。",
    "A credit note cannot be undone: it is numbered and issued at once, and reverses every line of the invoice.": (
        "红字冲销不可撤销：冲销单立即编号开具，冲回原发票的每一行。"
    ),
    "{count} invoice(s) for {customers} customer(s), in total {total}.": (
        "共 {count} 张发票，{customers} 个客户，合计 {total}。"
    ),
    "Confirm and issue": "确认开具",
    "Confirm the credit note": "确认红字冲销",
    "Nothing to issue: there is no draft.": "没有可开具的草稿。",
    "Issued {numbers}.": "已开具 {numbers}。",
    "Drafted {count} invoice(s).": "已生成 {count} 张草稿。",
    "No draft made: no finished booking waits to be billed.": "未生成草稿：没有待开票的已结束预约。",
    "Issued credit note {note} for {invoice}.": "已开具红字冲销 {note}（冲销 {invoice}）。",
    "Recorded tax invoice no. {tax} on {number}.": "已登记 {number} 的数电发票号码 {tax}。",
    # Bank statements: upload and review (fabhub/web/bank_pages.py).
    "The bank's CSV export: columns date, amount, reference (附言/摘要/用途) and payer, UTF-8 or GBK. A row whose "
    "reference names an issued invoice (FH2027-000001) and fits its open amount is recorded as its payment; the "
    "others wait for review. Importing the same rows again records nothing twice.": (
        "银行导出的 CSV：列为日期、金额、附言（摘要/用途）和付款人，UTF-8 或 GBK 编码。附言中写明已开具发票号"
        "（如 FH2027-000001）且金额不超过其未收金额的行记为该发票的收款，其余行待核对。同一行再次导入不会重复记录。"
    ),
    "Imported statements": "已导入的流水",
    "File": "文件",
    "Imported at": "导入时间",
    "By": "操作人",
    "matched": "已匹配",
    "partly_matched": "部分匹配",
    "assigned": "已指定",
    "dismissed": "已搁置",
    "To review": "待核对",
    "Result": "结果",
    "Date": "日期",
    "Payer": "付款人",
    "Choose the invoice": "选择发票",
    "Assign": "记入该发票",
    "Set aside": "搁置",
    "Nothing to review.": "没有待核对的行。",
    "All rows": "全部行",
    "Every row was imported before: nothing new.": "所有行此前均已导入：没有新内容。",
    "Assign each row to the invoice it pays (the open amount is checked again), or set it aside with the reason "
    "if it is not a customer's payment.": (
        "请将每行记入其所付的发票（会再次核对未收金额）；如不是客户付款，请填写原因后搁置。"
    ),
    "Choose a bank statement CSV file.": "请选择银行流水 CSV 文件。",
    "Choose the invoice this payment belongs to.": "请选择这笔款项对应的发票。",
    "Give a reason of 2 to 500 characters.": "请填写 2 至 500 字的原因。",
    "Recorded a payment of {amount} to {number} (line {line}).": "已记录付款 {amount} 到 {number}（第 {line} 行）。",
    "Set line {line} ({amount}) aside: {reason}": "已搁置第 {line} 行（{amount}）：{reason}",
    "Imported {file}: {paid} row(s) recorded as payments ({partly} of them in part), {review} to review, "
    "{duplicates} imported before.": (
        "已导入 {file}：{paid} 行记为收款（其中 {partly} 行为部分付款），{review} 行待核对，{duplicates} 行此前已导入。"
    ),
    "Give an amount above 0, a date and a method.": "请填写大于 0 的金额、日期和收款方式。",
    "Amount": "金额",
    "Paid on": "收款日期",
    "Method": "方式",
    "Reference": "附言",
    "Open": "未收",
    "Paid": "已收",
    "reversed": "已冲销",
    "bank_transfer": "银行转账",
    "cash": "现金",
    "wechat": "微信",
    "alipay": "支付宝",
    "other": "其他",
    "partly_paid": "部分收款",
    "paid": "已收款",
    "overdue": "逾期",
    "Management": "管理分析",
    "Log in": "登录",
    "Log out": "退出",
    "Email": "邮箱",
    "Password": "密码",
    "Wrong email or password.": "邮箱或密码错误。",
    "Your session has expired, please log in again.": "会话已过期，请重新登录。",
    "The form has expired; please try again.": "表单已过期，请重试。",
    "You may not open this page.": "您无权访问此页面。",
    "Not found.": "未找到。",
    "running": "运行",
    "setup": "调试",
    "idle": "空闲",
    "down": "故障",
    "maintenance": "维护",
    "offline": "离线",
    "unknown": "未知",
    "E-STOP": "急停",
    "Protective stop": "保护性停止",
    "Error": "故障代码",
    "Connection lost, reconnecting…": "连接中断，正在重连…",
    "in this state for": "持续",
    "Program": "程序",
    "Progress": "进度",
    "Parts": "件数",
    "Temperature": "温度",
    "Booked by": "预约方",
    "not booked": "未预约",
    "Alarm:": "报警：",
    "Device": "设备",
    "Class": "类别",
    "Week of": "周起始",
    "Previous week": "上一周",
    "Next week": "下一周",
    "Start": "开始",
    "End": "结束",
    "Price": "价格",
    "Market price": "市场价",
    "Subsidy": "补贴",
    "You pay": "应付",
    "Check the price": "查看价格",
    "Confirm the booking": "确认预约",
    "Booked.": "预约成功。",
    "Cancel": "取消",
    "Cancelled.": "已取消。",
    "Late cancellation fee": "逾期取消费",
    "No-show fee": "未到场费",
    "Fee": "费用",
    "Cancelled bookings": "已取消的预约",
    "Cancelled at": "取消时间",
    "Status": "状态",
    "confirmed": "已确认",
    "in_progress": "进行中",
    "completed": "已完成",
    "cancelled": "已取消",
    "no_show": "未到场",
    "Usage": "使用情况",
    "Calendar link": "日历订阅链接",
    "Create a calendar link": "生成日历订阅链接",
    "Customer": "客户",
    "Invoices": "发票",
    "Draft the month": "生成本月草稿",
    "Issue": "开具",
    "Credit note": "红字冲销",
    "Reason": "原因",
    "Number": "编号",
    "Total": "合计",
    "VAT": "增值税",
    "draft": "草稿",
    "issued": "已开具",
    "Lines (CSV)": "明细 (CSV)",
    "Lines (XLSX)": "明细 (XLSX)",
    "Usage export": "使用情况导出",
    "Subsidy report": "补贴报表",
    "Booked hours": "预约时长",
    "Running hours": "运行时长",
    "Bookings": "预约数",
    "Nothing yet.": "暂无数据。",
    "Put into maintenance": "设为维护",
    "Until": "直到",
    "Down time": "停机",
    "Reason code": "原因代码",
    "Attach the reason": "填写原因",
    "Last hours": "最近数小时",
    "State timeline": "状态时间线",
    "OEE trend": "OEE 趋势",
    "Utilisation": "利用率",
    "Booked versus running": "预约与实际运行",
    "Down time by reason": "停机原因帕累托",
    "Download the numbers": "下载数据",
    "Zoom to a day": "按日查看",
    "Whole range": "整个时段",
    "The day to zoom to lies outside the range.": "所选日期不在时段内。",
    "Inside opening hours, and outside them where a technician gave a reason.": (
        "开放时间内的停机，以及技术员已注明原因的开放时间外停机。"
    ),
    "Energy and CO₂ by class and month": "按设备类别和月份的能耗与碳排放",
    "Energy": "能耗",
    "Device class": "设备类别",
    "Month": "月份",
    "Idle": "空闲",
    "CO₂ at": "碳排放因子",
    "Subsidy against caps": "补贴使用与年度上限",
    "Subsidy program": "补贴项目",
    "Used": "已使用",
    "Remaining": "剩余",
    "All customers": "全部客户",
    "Saved.": "已保存。",
    "Tax invoice no.": "数电发票号码",
    "As printed on its tax invoices": "开票信息（购买方）",
    "Taxpayer type": "纳税人类型",
    "not given": "未填写",
    "Invoice address": "开票地址",
    "Invoice phone": "开票电话",
    "Bank": "开户银行",
    "Bank account": "银行账号",
    "Record": "登记",
    "E-invoice batch-issue sheet (XLSX)": "数电发票批量开具表（XLSX）",
    "hours": "小时",
    "any": "任意",
    "mine": "我的",
    "taken": "已约",
    "closed": "不开放",
    "free": "可约",
    "Free nearby": "附近可约时段",
    "The slot was just taken.": "该时段刚被预约。",
    "The slot is taken.": "该时段已被占用。",
    "Change the booking": "预约改期",
    "Move": "改期",
    "Changed.": "已改期。",
    "Now:": "当前：",
    "Confirm the change": "确认改期",
    "A move is priced anew at today's rates and subsidy. Inside the late-cancellation window a booking can no "
    "longer be moved.": "改期按当前价格和补贴重新计价。进入逾期取消时限后，预约不能再改期。",
    "This booking has started or is over, and cannot be changed.": "该预约已开始或已结束，无法改期。",
    "Give a start and an end, in the years 2000 to 2199.": "请填写开始和结束时间（2000 至 2199 年）。",
    "The note holds at most 500 characters.": "备注最多 500 个字符。",
    "The end must come after the start.": "结束时间须晚于开始时间。",
    "Choose a class of machines.": "请选择设备类别。",
    "credited": "已冲销",
    "Give a reason of 3 to 500 characters.": "请填写 3 至 500 字的原因。",
    "Text cannot contain NUL characters.": "文字中不能含有 NUL 字符。",
    "Choose a down interval.": "请选择一个停机区间。",
    "The window has already ended.": "该时段已经结束。",
    "unexplained": "未说明",
    "Cancel the bookings in the way (free of charge)": "取消冲突的预约（免费）",
    "Maintenance windows": "维护计划",
    "still down": "仍在停机",
    "Note": "备注",
    "Choose up to 92 days, the first before the last.": "请选择不超过 92 天的时间段，开始日期须早于结束日期。",
    "Register your company": "企业注册",
    "Or wait for this slot": "或候补此时段",
    "qualified until": "操作资格有效至",
    "your qualification expired on": "操作资格已于",
    "; ask a technician to renew it": " 到期，请联系技术人员续期",
    "not qualified yet: a technician grants the qualification after an introduction": (
        "尚无操作资格：经技术人员培训后授予"
    ),
    "Repeat": "重复",
    "once": "不重复",
    "every day": "每天",
    "every week": "每周",
    "times": "次数",
    "Book the free occurrences": "预约其中可约的时段",
    "Project or purchase-order reference": "项目或采购单号",
    "Book it for me as soon as it is free": "时段空出时自动为我预约",
    "Join the waiting list": "加入候补",
    "Waiting list": "候补",
    "waiting:waiting": "候补中",
    "waiting:offered": "已为您保留",
    "held for you until": "保留至",
    "Book it": "预约",
    "Withdraw": "撤回",
    "You are on the waiting list.": "已加入候补。",
    "Withdrawn from the waiting list.": "已撤回候补。",
    "Notifications": "消息通知",
    "Email me about my bookings and invoices": "通过邮件通知预约和发票消息",
    "Language of the messages": "消息语言",
    "Remind me before a booking": "预约开始前提醒",
    "24 hours before": "提前 24 小时",
    "3 hours before": "提前 3 小时",
    "1 hour before": "提前 1 小时",
    "Save": "保存",
    "Choose from the list.": "请从列表中选择。",
    "Submit the registration": "提交注册",
    "The center reviews each registration; you can book once it is approved.": (
        "中心审核每一份注册，通过后即可预约设备。"
    ),
    "Company name": "企业名称",
    "Unified social credit code": "统一社会信用代码",
    "Contact name": "联系人",
    "Contact phone": "联系电话",
    "Business licence (PDF, JPG or PNG, at most 10 MB)": "营业执照（PDF、JPG 或 PNG，不超过 10 MB）",
    "Thank you. We sent a link to your email: open it within 48 hours to confirm the address.": (
        "感谢注册。我们已向您的邮箱发送确认链接，请在 48 小时内点击确认。"
    ),
    "Your email is confirmed. The center reviews the registration and will tell you its decision.": (
        "邮箱已确认。中心将审核您的注册并通知审核结果。"
    ),
    "Choose your password": "设置密码",
    "Welcome, {0}. Choose a password to log in as {1}.": "{0}，欢迎！请设置密码，之后用 {1} 登录。",
    "The password again": "再次输入密码",
    "Set the password and log in": "设置密码并登录",
    "The two passwords differ.": "两次输入的密码不一致。",
    "Invite by email": "邮件邀请",
    "Language of the email": "邮件语言",
    "The person gets a link to choose a password; it holds 7 days and works once.": (
        "对方将收到设置密码的链接，7 天内有效，仅可使用一次。"
    ),
    "Send the invitation": "发送邀请",
    "The invitation is on its way.": "邀请邮件正在发送。",
    "Invitation": "邀请",
    "No password yet.": "尚未设置密码。",
    "The emailed link holds until {0}.": "邀请链接有效期至 {0}。",
    "The emailed link expired on {0}.": "邀请链接已于 {0} 过期。",
    "Send a new invitation": "重新发送邀请",
    "Organizations": "单位管理",
    "Users": "用户管理",
    "Opening hours": "开放时间",
    "Audit log": "审计日志",
    "Delivery log": "通知记录",
    "API keys": "API 密钥",
    "Systems such as an ERP call the API with a key instead of a login: Authorization: Bearer fhk_…": (
        "ERP 等系统用密钥代替登录调用 API：Authorization: Bearer fhk_…"
    ),
    "The new key": "新密钥",
    "Copy it now: it is shown this once. FabHub keeps only a digest of it.": (
        "请立即复制：密钥只显示这一次，FabHub 只保存其摘要。"
    ),
    "The key is revoked.": "密钥已撤销。",
    "Created": "创建时间",
    "Expires": "到期",
    "Last used": "最近使用",
    "never": "从不",
    "revoked": "已撤销",
    "Create an API key": "创建 API 密钥",
    "Webhooks": "Webhook 推送",
    "webhook": "Webhook",
    "Systems such as an ERP hear of events at their URL, each delivery signed as Standard Webhooks says and "
    "tried again until it is answered with 2xx.": (
        "ERP 等系统在其 URL 接收事件：每次推送按 Standard Webhooks 签名，未得到 2xx 应答时会重试。"
    ),
    "The new webhook's secret": "新 Webhook 的签名密钥",
    "Copy it now into the receiving system: it is shown this once.": "请立即复制到接收系统：密钥只显示这一次。",
    "The webhook is disabled.": "Webhook 已停用。",
    "URL": "URL",
    "Events": "事件",
    "Description": "说明",
    "Deliveries": "推送记录",
    "Disable": "停用",
    "disabled": "已停用",
    "Register a webhook": "登记 Webhook",
    "http:// only for this machine or a private network address; anywhere else https://.": (
        "http:// 仅限本机或内网地址，其他地址须用 https://。"
    ),
    "Give an https:// URL of at most 300 characters and choose at least one event.": (
        "请填写不超过 300 个字符的 https:// URL，并至少选择一个事件。"
    ),
    "Booking completed": "预约完成",
    "Payment recorded": "收款登记",
    "none (staff roles)": "无（员工角色）",
    "A customer key acts for one organization and sees only its data. A key is never an admin.": (
        "客户密钥代表一个单位，只能看到该单位的数据。密钥不能是管理员。"
    ),
    "Registrations": "注册审核",
    "Submitted": "提交时间",
    "Business licence": "营业执照",
    "Approve": "批准",
    "Refuse": "拒绝",
    "registration pending": "待审核",
    "registration unconfirmed": "邮箱未确认",
    "registration approved": "已批准",
    "registration refused": "已拒绝",
    "Approved: the company's contact can log in now.": "已批准：该企业联系人现在可以登录。",
    "Refused: the contact is told the reason.": "已拒绝：已将原因告知联系人。",
    "Email is not set up (FABHUB_SMTP_URL): invitations and other messages are not sent.": (
        "未配置邮件服务（FABHUB_SMTP_URL）：邀请和其他通知邮件不会发出。"
    ),
    "all": "全部",
    "Event": "事件",
    "Recipient": "收件人",
    "Subject": "主题",
    "Attempts": "尝试次数",
    "Last error": "最近错误",
    "Attachment": "附件",
    "next attempt": "下次尝试",
    "group robot": "群机器人",
    "Send again": "重新发送",
    "Queued to be sent again.": "已重新排队发送。",
    "message pending": "待发送",
    "message sent": "已发送",
    "message failed": "发送失败",
    "Booking confirmed": "预约确认",
    "Booking moved": "预约改期",
    "Booking cancelled": "预约取消",
    "Booking ended early": "预约提前结束",
    "ended early": "已提前结束",
    "End now": "提前结束",
    "booked until": "预约至",
    "The rest of the slot is freed for others.": "剩余时段将释放给他人预约。",
    "Charged for the booked slot.": "按预约时段计费。",
    "Charged for the running time, at least {share} of the booked slot.": (
        "按实际运行时间计费，不少于预约时长的 {share}。"
    ),
    "Booking {id} ended early; the machine is free for others from {time}.": (
        "预约 {id} 已提前结束，设备自 {time} 起可供他人预约。"
    ),
    "No-show": "爽约",
    "Reminder": "预约提醒",
    "Recurring booking confirmed": "系列预约确认",
    "Waiting-list offer": "候补空出",
    "Invoice issued": "发票开具",
    "Machine down": "设备故障",
    "Qualification ending": "资质即将到期",
    "Registration submitted": "注册已提交",
    "Registration approved": "注册已批准",
    "Registration refused": "注册被拒绝",
    "Account": "账户",
    "Action": "操作",
    "Actor": "操作人",
    "After": "变更后",
    "Before": "变更前",
    "Change": "变更内容",
    "Active (untick to deactivate: the user is logged out at once)": "启用（取消勾选即停用：该用户立即退出登录）",
    "Add a user": "添加用户",
    "Its users": "本单位用户",
    "Add closed days, one line each: a date or a range, then the reason": (
        "添加闭馆日，每行一条：日期或日期范围，后接原因"
    ),
    "Add make-up working days, one line each: a date, then the reason": "添加调休上班日，每行一条：日期，后接原因",
    "Annual cap": "年度上限",
    "Bookings now outside the hours (they stay booked)": "现已不在开放时间内的预约（预约保留）",
    "CSV file": "CSV 文件",
    "Check": "检查",
    "Close these days": "设为闭馆日",
    "Closed days": "闭馆日",
    "Closed days and make-up working days in": "闭馆日与调休上班日：",
    "Contact": "联系人",
    "Contact email": "联系人邮箱",
    "Create": "创建",
    "Create a user": "创建用户",
    "Deactivate (its users can no longer log in)": "停用（其用户将无法登录）",
    "Details": "基本信息",
    "Email or name": "邮箱或姓名",
    "Every booking needs a project or PO reference": "每个预约须填写项目号或采购订单号",
    "Every week": "每周",
    "Export as CSV": "导出 CSV",
    "Filter": "筛选",
    "For example 08:00-12:00, 13:00-20:00; leave a day empty to close it; 24:00 for midnight.": (
        "例如 08:00-12:00, 13:00-20:00；留空表示当天不开放；午夜写作 24:00。"
    ),
    "From": "起始日期",
    "To": "截止日期",
    "Give the last day the qualification holds.": "请填写资格有效期的最后一天。",
    "Grant": "授予",
    "Grant a qualification": "授予操作资格",
    "Granted": "已发放",
    "Left": "剩余",
    "Granted counts invoice drafts too: a draft holds its share of the cap until it is replaced or credited.": (
        "已发放金额包含发票草稿：草稿在被替换或冲销前占用相应额度。"
    ),
    "Import": "导入",
    "Import users from a CSV file": "从 CSV 文件导入用户",
    "Imported.": "导入完成。",
    "Line": "行",
    "Line {0}": "第 {0} 行",
    "Made-up passwords are shown this once; hand them to their users, who should change them.": (
        "系统生成的密码仅显示这一次；请转交给用户，并提醒其修改密码。"
    ),
    "Make-up working days": "调休上班日",
    "Monday": "周一",
    "Tuesday": "周二",
    "Wednesday": "周三",
    "Thursday": "周四",
    "Friday": "周五",
    "Saturday": "周六",
    "Sunday": "周日",
    "Name": "名称",
    "Name, credit code or contact": "名称、信用代码或联系人",
    "National Day": "国庆节",
    "National Day make-up day": "国庆节调休",
    "New password": "新密码",
    "Not eligible for any subsidy program.": "未享受任何补贴项目。",
    "Nothing found.": "未找到记录。",
    "Object": "对象",
    "Object id": "对象编号",
    "Older entries": "更早的记录",
    "Open these days": "设为上班日",
    "Open with the hours of": "按以下日期的开放时间",
    "Or fix the rows here": "或在此直接修改",
    "Organization": "单位",
    "Organization (customers only)": "所属单位（仅客户）",
    "Phone": "电话",
    "Preview": "预览",
    "Problems": "问题",
    "Qualifications": "操作资格",
    "Reactivate": "重新启用",
    "Register": "登记",
    "Register an organization": "登记新单位",
    "Remove": "删除",
    "Renew": "续期",
    "Revoke": "撤销",
    "Role": "角色",
    "Search": "搜索",
    "Set a new password": "重设密码",
    "Set the password": "设置密码",
    "Share": "补贴比例",
    "Subsidy in": "补贴使用情况：",
    "Subsidy programs": "补贴项目",
    "The expiry date has passed already.": "有效期已过，请选择今天或以后的日期。",
    "The file is empty.": "文件为空。",
    "The first line names the columns: email, name, role and, for customers, organization (its credit code or id).": (
        "第一行为列名：邮箱、姓名、角色，客户还需单位（统一社会信用代码或编号）。"
    ),
    "Roles: customer, technician, finance, admin. A password column is optional; without it one is made up.": (
        "角色：客户、技术员、财务、管理员（也可写 customer、technician、finance、admin）。"
        "密码列可选，不填则由系统生成。"
    ),
    "Chinese headers (邮箱, 姓名, 角色, 单位, 密码) and Excel's UTF-8 or GBK files work too. At most": (
        "也可使用英文列名（email, name, role, organization, password），支持 Excel 保存的 UTF-8 或 GBK 文件。最多"
    ),
    "rows; nothing is imported unless every row is right.": "行；只有全部行都正确时才会导入。",
    "The form is incomplete; please try again.": "表单不完整，请重试。",
    "The user's sessions and calendar link end; tell them the new password in person.": (
        "该用户的所有登录会话和日历链接将失效；请当面告知新密码。"
    ),
    "The first line must name the columns email, name and role; organization and password may follow.": (
        "第一行须包含列名：邮箱、姓名、角色；可另加单位和密码。"
    ),
    "write each opening as 08:00-12:00, separated by commas, not overlapping (24:00 for midnight)": (
        "请按 08:00-12:00 的格式填写，多段用逗号分隔，时段不得重叠（午夜写作 24:00）"
    ),
    "Choose subsidy programs from the list.": "请从列表中选择补贴项目。",
    "Time": "时间",
    "Valid through": "有效期至",
    # The machine report of a booking and the comparison (fabhub/web/report_pages.py).
    "Machine report": "设备使用报告",
    "Report": "报告",
    "Compare": "对比",
    "Compare the ticked bookings": "对比所选预约",
    "Comparison": "预约对比",
    "Results frozen at": "结果冻结于",
    "Availability": "可用率",
    "Performance": "性能率",
    "Quality": "良品率",
    "above 100 %: the ideal cycle time is set too long": "超过 100%：理想节拍设置过长",
    "Parts made": "总产量",
    "Good parts": "良品",
    "Scrap": "废品",
    "What was billed": "计费",
    "Billing basis": "计费方式",
    "basis:booked": "按预约时长",
    "basis:metered": "按实际运行时长",
    "basis:overage": "预约时长加超时",
    "Charge": "费用",
    "As invoiced": "按已开具发票",
    "Not invoiced yet: an estimate from the measured usage; the subsidy's annual cap applies on the invoice.": (
        "尚未开票：按实测用量估算；补贴的年度上限在开票时计算。"
    ),
    "not measured": "未计量",
    "Idle energy": "空闲电能",
    "Energy per good part": "单件良品电耗",
    "Overrun": "超时运行",
    "Six big losses": "六大损失",
    "Breakdowns": "故障停机",
    "Setup and adjustments": "调试与调整",
    "Small stops": "短暂停机",
    "Reduced speed": "速度损失",
    "Rejects": "废品损失",
    "parts": "件",
    "Cycle times": "加工节拍",
    "Parts measured": "计量件数",
    "mean": "平均",
    "median": "中位数",
    "shortest": "最短",
    "longest": "最长",
    "ideal": "理想",
    "Cycle time": "节拍",
    "Cycle-time distribution": "节拍分布",
    "Cycle-time trend": "节拍趋势",
    "Mean cycle time": "平均节拍",
    "Median cycle time": "节拍中位数",
    "Programs run": "运行程序",
    "Starts": "启动次数",
    "Alarms": "报警",
    "Alarm": "报警内容",
    "Cleared": "解除时间",
    "still on": "未解除",
    "In the slot": "预约时段内",
    "Frozen before machine reports: no timeline, cycle times, programs, alarms or down time were kept.": (
        "该预约在设备报告功能上线前已冻结：未保留状态时间线、节拍、程序、报警和停机记录。"
    ),
    "Write at least one day.": "请至少填写一天。",
    "active": "启用",
    "deactivated": "已停用",
    "admin": "管理员",
    "customer": "客户",
    "technician": "技术员",
    "finance": "财务",
    "as in the file": "同文件中",
    "before / after": "变更前 / 变更后",
    "email or part of it": "邮箱或其一部分",
    "expired": "已过期",
    "hours of": "开放时间同",
    "no longer eligible": "已不再享受",
    "none: staff of the center": "无：中心员工",
    "rows have problems": "行有问题",
    "the days must lie in the chosen year, in order": "日期须在所选年份内，且按先后顺序",
    "write a date, or two joined by .., then the reason": "请写一个日期，或用 .. 连接的两个日期，后接原因",
}


# What the domains answer (English, for the API), as the pages say it in Chinese: pattern -> template with
# the pattern's groups. A message without a pattern is shown as it is rather than hidden.
DOMAIN_ZH: list[tuple[re.Pattern[str], str]] = [
    (re.compile(p), zh)
    for p, zh in (
        (r"^the maintenance window must end after it starts$", "维护时段的结束时间须晚于开始时间。"),
        (
            r"^an API key's role is .*administration stays with people$",
            "密钥的角色只能是客户、技术员或财务：管理仅限登录的人员。",
        ),
        (r"^an API key's name has 1 to (\d+) characters$", "密钥名称为 1 至 {0} 个字符。"),
        (r"^a webhook URL starts with https:// and names a host$", "Webhook URL 须以 https:// 开头并包含主机名。"),
        (r"^a webhook URL uses https://; http:// only", "Webhook URL 须用 https://；http:// 仅限本机或内网地址。"),
        (r"^a webhook URL carries no user or password", "Webhook URL 不能含用户名或密码：签名可证明请求来自 FabHub。"),
        (r"^(\S+) is registered already: disable that webhook first$", "{0} 已登记：请先停用原来的 Webhook。"),
        (r"^expires_at is in the past$", "有效期已过。"),
        (r"^the maintenance window has already ended", "该维护时段已经结束。"),
        (r"^a maintenance window lasts at most (\d+) days$", "维护时段最长 {0} 天。"),
        (r"^give a reason for the maintenance window$", "请填写维护原因。"),
        (r"^the reason is longer than (\d+) characters$", "原因超过 {0} 个字符。"),
        (r"^(\S+) already has a maintenance window overlapping this one$", "{0} 已有与之重叠的维护时段。"),
        (
            r"^(\d+) booking\(s\) of (\S+) under way or done overlap this window",
            "{1} 有 {0} 个进行中或已完成的预约与该时段重叠：请先结束预约，或推迟维护开始时间。",
        ),
        (
            r"^(\d+) live booking\(s\) of (\S+) overlap this window",
            "{1} 有 {0} 个预约与该时段重叠：请调整时段，或勾选“取消冲突的预约”。",
        ),
        (r"^the booking must end after it starts$", "预约的结束时间须晚于开始时间。"),
        (r"^booking (\d+) is (\w+) and cannot be cancelled$", "预约 {0} 的状态为 {1}，无法取消。"),
        (r"^booking (\d+) has started", "预约 {0} 已开始，无法取消。"),
        (r"^no booking (\d+)$", "未找到预约 {0}。"),
        (r"^booking (\d+) has not been checked in yet", "预约 {0} 尚未签到：设备运行或技术人员签到后才能提前结束。"),
        (
            r"^booking (\d+) is (\w+); only a booking in progress is ended$",
            "预约 {0} 的状态为 {1}，只有进行中的预约可以提前结束。",
        ),
        (r"^booking (\d+) is over already$", "预约 {0} 已经结束。"),
        (r"^booking (\d+) cannot be moved: it has started or ended$", "预约 {0} 已开始或已结束，无法改期。"),
        (
            r"^booking (\d+) starts within (\S+) h: it can no longer be moved",
            "预约 {0} 将在 {1} 小时内开始，已不能改期：只能取消（收取迟取消费），或请技术人员改期。",
        ),
        (r"^booking (\d+) is (\w+) and cannot be changed$", "预约 {0} 的状态为 {1}，无法修改。"),
        (r"^a change keeps the machine class \((\S+)\)", "改期不能更换设备类别（{0}）：请预约其他类别后取消本预约。"),
        (
            r"^notification (\d+) is (\w+): only a failed one is sent again$",
            "通知 {0} 的状态为 {1}：只有发送失败的通知可以重发。",
        ),
        (r"^no notification (\d+)$", "未找到通知 {0}。"),
        (r"^device (\S+) is retired", "设备 {0} 已停用。"),
        (r"^the organization is deactivated", "本单位已停用，请联系中心。"),
        (r"^invoice (\S+) is issued already$", "发票 {0} 已开具。"),
        (r"^only an issued invoice gets a credit note", "只有已开具的发票才能红字冲销；草稿可直接重新生成。"),
        (r"^invoice (\S+) is credited already$", "发票 {0} 已冲销。"),
        (r"^no invoice (\d+)$", "未找到发票 {0}。"),
        # oee: payments and the bank statement import
        (
            r"^the payment of (\S+) exceeds the open amount of (\S+)$",
            "收款 ¥{0} 超过该发票的未收金额 ¥{1}。",
        ),
        (r"^payments are recorded against issued invoices", "只能对已开具且未冲销的发票登记收款。"),
        (r"^bank statement row (\d+) is (\w+) already$", "该流水行已处理（{1}）。"),
        (r"^no bank statement row (\d+)$", "未找到流水行 {0}。"),
        (r"^the file is larger than (\d+) KiB$", "文件超过 {0} KiB。"),
        (r"^the file is neither UTF-8 nor GBK text$", "文件不是 UTF-8 或 GBK 编码的文本：请从网银导出 CSV 文件。"),
        (
            r"^line 1: the header has no (\w+) column \((.+)\)$",
            "第 1 行（列名）缺少{0}列（{1}）：请上传银行导出的 CSV 文件。",
        ),
        (r"^more than (\d+) rows: split the statement$", "超过 {0} 行：请拆分流水文件。"),
        (r"^line (\d+): (\d+) columns, the header has (\d+)$", "第 {0} 行：有 {1} 列，列名行有 {2} 列。"),
        (r"^line (\d+): date (.+) is not YYYY-MM-DD$", "第 {0} 行：日期 {1} 不是 YYYY-MM-DD 格式。"),
        (r"^line (\d+): amount (.+) is not a number$", "第 {0} 行：金额 {1} 不是数字。"),
        (r"^line (\d+): amount (.+) must be above 0", "第 {0} 行：金额 {1} 须大于 0，最多两位小数。"),
        (r"^line (\d+): text cannot contain NUL characters$", "第 {0} 行：文字中不能有空字符。"),
        (r"^line (\d+): (.+)$", "第 {0} 行：{1}"),
        (r"^a 数电发票号码 has 20 digits", "数电发票号码为 20 位数字。"),
        (r"^the taxpayer type is ", "纳税人类型为一般纳税人或小规模纳税人（或不填）。"),
        (
            r"^the invoice phone has digits, dashes and spaces only",
            "开票电话只能包含数字、短横线和空格（5 至 30 位）。",
        ),
        (r"^the bank account has 8 to 32 digits", "银行账号为 8 至 32 位数字。"),
        (r"^a draft has no tax invoice yet", "草稿尚无数电发票：请先开具。"),
        (r"^the tax invoice number (\d+) is recorded on another invoice", "数电发票号码 {0} 已登记在另一张发票上。"),
        (r"^(\S+) is not over yet", "{0} 尚未结束。"),
        (r"^the note is longer than (\d+) characters$", "备注超过 {0} 个字符。"),
        (r"^unknown reason code", "未知的原因代码。"),
        (r"^no down interval of (\S+) starts at (.+)$", "{0} 没有从 {1} 开始的停机区间。"),
        (
            r"^at most (\d+) registrations from this address in (\d+) hours$",
            "同一网络地址 {1} 小时内最多注册 {0} 次，请稍后再试。",
        ),
        (
            r"^at most (\d+) registrations for this email in (\d+) hours$",
            "同一邮箱 {1} 小时内最多注册 {0} 次，请稍后再试。",
        ),
        (r"^the credit code (\S+) is registered already", "统一社会信用代码 {0} 已注册或正在审核。"),
        (r"^the email (\S+) belongs to an account already", "邮箱 {0} 已有账号，请直接登录。"),
        (r"^the business licence file is empty$", "请上传营业执照文件。"),
        (r"^the business licence file is larger than (\d+) MB$", "营业执照文件超过 {0} MB。"),
        (r"^the business licence must be a PDF, JPG or PNG file$", "营业执照须为 PDF、JPG 或 PNG 文件。"),
        (r"^give a contact phone$", "请填写联系电话。"),
        (r"^the slot is free now: book it instead of waiting$", "该时段现在可预约，请直接预约。"),
        (
            r"^the slot breaks (\d+) rule\(s\) that waiting will not change$",
            "该时段不符合 {0} 条规则，候补也无法满足。",
        ),
        (r"^at most (\d+) open waiting-list entries per user$", "每人最多同时候补 {0} 个时段。"),
        (r"^waiting-list entry (\d+) has no open offer$", "候补 {0} 没有可确认的保留时段。"),
        (r"^waiting-list entry (\d+) is (\w+)$", "候补 {0} 已结束。"),
        (r"^the slot is taken$", "该时段已被预约。"),
        (r"^(\S+) is under maintenance then$", "{0} 在此时段维护中。"),
        (r"^no \S+ is free then$", "此时段该类别没有空闲设备。"),
        (r"^this confirmation link is not valid", "确认链接无效（已使用或已超过 48 小时）。"),
        # accounts: organizations, users, passwords, qualifications, the CSV import
        (
            r"^this invitation link is not valid",
            "邀请链接无效（已使用、已被新的邀请取代，或已超过 7 天）：请联系中心重新邀请。",
        ),
        (r"^user (\d+) has a password already", "用户 {0} 已设置密码：如需更改，请直接重设密码。"),
        (r"^user (\d+) is deactivated", "用户 {0} 已停用：请先重新启用再邀请。"),
        (r"^the language is ", "请选择邮件语言：中文或 English。"),
        (r"^(.+) has 1 to (\d+) characters$", "{0}须为 1 至 {1} 个字符。"),
        (r"^(.+) has at most (\d+) characters$", "{0}最多 {1} 个字符。"),
        (r"^(.+) cannot contain control characters$", "{0}不能包含控制字符。"),
        (r"^.+ '(.*)' is not an email address$", "“{0}”不是有效的邮箱地址。"),
        (
            r"^a unified social credit code has 18 characters, this one has (\d+)$",
            "统一社会信用代码应为 18 位，当前为 {0} 位。",
        ),
        (
            r"^character\(s\) (.+) cannot appear in a unified social credit code$",
            "统一社会信用代码中不能出现字符 {0}。",
        ),
        (
            r"^check character is (\S), the first 17 characters give (\S)",
            "校验位为 {0}，按前 17 位应为 {1}：可能有输入错误。",
        ),
        (r"^the credit code (\S+) belongs to another organization already$", "统一社会信用代码 {0} 已属于另一家单位。"),
        (r"^no organization (\d+)$", "未找到单位 {0}。"),
        (r"^unknown role '(.*)'", "未知角色“{0}”；可用角色：客户、技术员、财务、管理员。"),
        (r"^a customer belongs to an organization", "客户须属于一个单位：请选择其单位。"),
        (r"^organization (\d+) does not exist$", "单位 {0} 不存在。"),
        (
            r"^a (\w+) works for the center and belongs to no organization",
            "{0}是中心员工，不属于任何单位：请不要选择单位。",
        ),
        (r"^you cannot take away your own admin access", "不能取消自己的管理员权限；请由另一位管理员操作。"),
        (r"^the email (\S+) is in use by another account already$", "邮箱 {0} 已被其他账户使用。"),
        (r"^no user (\d+)$", "未找到用户 {0}。"),
        (r"^a password has (\d+) to (\d+) characters$", "密码须为 {0} 至 {1} 个字符。"),
        (r"^a password cannot start or end with spaces$", "密码首尾不能有空格。"),
        (r"^user (\d+) holds no qualification for '(.*)'$", "用户 {0} 没有 {1} 的操作资格。"),
        (r"^the file has no rows to import$", "文件中没有可导入的行。"),
        (r"^at most (\d+) rows at once; this file has (\d+)$", "每次最多导入 {0} 行；此文件有 {1} 行。"),
        (r"^the email (\S+) is on line (\d+) too$", "邮箱 {0} 在第 {1} 行也出现了。"),
        (r"^(\d+) of (\d+) rows have problems; nothing was imported$", "{1} 行中有 {0} 行有问题，未导入任何内容。"),
        (r"^no organization has the credit code or id (.+)$", "没有信用代码或编号为 {0} 的单位。"),
        # booking: closed days and make-up working days
        (r"^give a reason for the day$", "请填写原因。"),
        (r"^at most (\d+) days at once$", "每次最多 {0} 天。"),
        (r"^(\S+) is a make-up working day: remove it first$", "{0} 是调休上班日：请先删除。"),
        (r"^(\S+) is a closed day: remove it first$", "{0} 是闭馆日：请先删除。"),
        (r"^(\S+) is not a Saturday or Sunday", "{0} 不是周六或周日：调休上班日只能是周末。"),
        (r"^(\S+) is not a closed day$", "{0} 不是闭馆日。"),
        (r"^(\S+) is not a make-up working day$", "{0} 不是调休上班日。"),
        (r"^weekday must be 1 \(Monday\) to 7 \(Sunday\)$", "请选择周一至周日。"),
        # booking: the class rules a request breaks (booking.rules, booking.bookings), durations as "2 h", "30 min"
        (r"^the slot starts in the past$", "该时段的开始时间已过。"),
        (r"^a booking lasts at least (\S+) (h|min)$", "预约至少 {0} {1}。"),
        (r"^a booking lasts at most (\S+) (h|min)$", "预约最长 {0} {1}。"),
        (
            r"^bookings start and end on a (\S+) (h|min) grid from midnight$",
            "预约须按从零点起每 {0} {1}的时间格开始和结束。",
        ),
        (r"^bookings open (\d+) days ahead$", "最多可提前 {0} 天预约。"),
        (r"^the center is closed during part of this slot$", "该时段内有部分时间中心不开放。"),
        (r"^not qualified for .+: a technician grants qualifications$", "尚无此类设备的操作资格，须由技术人员授予。"),
        (
            r"^the qualification for .+ expires on (\S+), before this booking ends",
            "此类设备的操作资格于 {0} 到期，早于预约结束：请联系技术人员续期。",
        ),
        (r"^your organization books with a project or purchase-order reference$", "本单位预约须填写项目或采购单号。"),
        (
            r"^your organization may hold at most (\S+) (h|min) of future bookings in this class; "
            r"it holds (\S+) (h|min) and this booking adds (\S+) (h|min)$",
            "本单位在此类设备上的未来预约最多 {0} {1}；已有 {2} {3}，本次预约 {4} {5}。",
        ),
        (r"^the slot is taken or the device is under maintenance$", "该时段已被预约或设备维护中。"),
        # booking: what else the booking form can be refused for
        (r"^a booking lasts at most (\d+) days, even with an override$", "预约最长 {0} 天。"),
        (r"^device (\S+) is a \S+, not a \S+$", "设备 {0} 不属于所选类别。"),
        (r"^class \S+ has no bookable device$", "该类别没有可预约的设备。"),
        (r"^staff book for a customer: give the customer's user_id$", "请选择为哪位客户预约。"),
        (r"^user (\d+) is not an active customer$", "用户 {0} 不是有效的客户。"),
        (r"^rule: COUNT is a whole number from 1 to (\d+)$", "重复次数须为 1 至 {0}。"),
        (r"^no occurrence of the series can be booked$", "该系列中没有可预约的时段。"),
    )
]
# The domains' names for what a message is about, as the Chinese templates above say them.
TERMS_ZH = {
    "an organization's name": "单位名称",
    "a user's name": "姓名",
    "a contact name": "联系人",
    "a contact phone": "电话",
    "a contact email": "联系人邮箱",
    "customer": "客户",
    "technician": "技术员",
    "finance": "财务",
    "admin": "管理员",
    "h": "小时",
    "min": "分钟",
    "date": "日期",
    "amount": "金额",
    "reference": "附言",
    "payer": "付款人",
    "matched": "已匹配",
    "assigned": "已指定",
    "dismissed": "已搁置",
}
# The booking rules by name (booking.rules.Violation.rule), as a refused booking names them.
RULES_ZH = {
    "past": "开始时间已过",
    "min_booking": "预约时长过短",
    "max_booking": "预约时长过长",
    "granularity": "须按时间格开始和结束",
    "horizon": "超出可预约天数",
    "opening_hours": "中心在此时段不开放",
    "qualification": "缺少设备操作资格",
    "max_future_hours_per_org": "超出本单位未来预约时长上限",
    "reference": "本单位要求填写项目或采购单号",
    "taken": "时段不可约",
}


def language(value: str | None) -> str:
    return value if value in LANGUAGES else DEFAULT


class Texts:
    """What a template needs to speak one language: `_()` and the formatters, in the center's zone."""

    def __init__(self, lang: str, zone: ZoneInfo) -> None:
        self.lang = language(lang)
        self.locale = LANGUAGES[self.lang]
        self.zone = zone

    def __call__(self, text: str) -> str:
        return ZH.get(text, text) if self.lang == "zh" else text

    def error(self, message: str) -> str:
        """A domain's refusal in the reader's language."""
        if self.lang == "zh":
            for pattern, template in DOMAIN_ZH:
                found = pattern.match(message)
                if found:
                    return template.format(*(TERMS_ZH.get(g, g) for g in found.groups()))
        return message

    def rule(self, rule: str, message: str) -> str:
        """A booking rule a request breaks: in Chinese the rule's name and what it asks; in English the domain's
        sentence, which says both."""
        return self.about(RULES_ZH.get(rule, rule), self.error(message)) if self.lang == "zh" else message

    def listing(self, items: list[str]) -> str:
        """Items named in a sentence: 、 between them in Chinese, commas in English."""
        return ("、" if self.lang == "zh" else ", ").join(items)

    def about(self, subject: str, text: str) -> str:
        """`text` said of `subject` (a weekday, a line of a file), with the language's colon."""
        return f"{subject}：{text}" if self.lang == "zh" else f"{subject}: {text}"

    def money(self, amount: Decimal | str | None) -> str:
        return "" if amount is None else format_currency(Decimal(amount), "CNY", locale=self.locale)

    def percent(self, share: float | None) -> str:
        return "–" if share is None else format_percent(share, "#,##0.0%", locale=self.locale)

    def when(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return format_datetime(moment.astimezone(self.zone), "yyyy-MM-dd HH:mm", locale=self.locale)

    def clock(self, moment: datetime) -> str:
        return format_time(moment.astimezone(self.zone), "HH:mm", locale=self.locale)

    def until(self, start: datetime, end: datetime) -> str:
        """A slot's end beside its start: the time alone on the same local day, else with its date (a
        booking running past midnight ends the next day)."""
        same_day = start.astimezone(self.zone).date() == end.astimezone(self.zone).date()
        return self.clock(end) if same_day else self.when(end)

    def duration(self, seconds: float | None) -> str:
        """A length of time as people say it: "35 小时 47 分" / "35 h 47 min", never "35.8 h"."""
        if seconds is None or seconds != seconds:  # None or NaN: not measured
            return "–"
        hours, minutes = divmod(round(seconds / 60), 60)
        if self.lang == "zh":
            return f"{hours} 小时 {minutes} 分" if hours else f"{minutes} 分"
        return f"{hours} h {minutes} min" if hours else f"{minutes} min"

    def day(self, day: date) -> str:
        return format_date(day, "EEE M/d", locale=self.locale)
