"""Where messages go. Email through aiosmtplib; the group robots (WeCom, DingTalk, Feishu) through a small
httpx client rather than apprise: apprise reports a robot's refusal (HTTP 200 with errcode 93000) as
success, double-encodes DingTalk's signature and cannot sign for Feishu, and a message marked sent that was
refused is a message lost. Each robot is configured with the full webhook URL the group's admin copies."""

from __future__ import annotations

import base64
import email.policy
import hashlib
import hmac
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
import httpx

RobotKind = Literal["wecom", "dingtalk", "feishu"]
# Flattened by us, not by aiosmtplib (whose SMTP policy folds at 78): Python's folding of a long Chinese subject
# into several encoded words drops the spaces at the folds ("将于 2027" arrives as "将于2027"). One longer
# encoded word is within what mail clients read, and the text arrives as written.
HEADERS_UNFOLDED = email.policy.SMTP.clone(max_line_length=998)
ROBOT_KINDS: tuple[RobotKind, ...] = ("wecom", "dingtalk", "feishu")
TIMEOUT_S = 15


class SendFailed(Exception):
    """The channel refused or could not be reached: the message is tried again later."""


class Undeliverable(SendFailed):
    """No later attempt can succeed (the webhook was disabled): the message fails at once."""


@dataclass(frozen=True, slots=True)
class Smtp:
    """`smtps://user:pass@host[:465]` (TLS from the start) or `smtp://user:pass@host[:587]` (STARTTLS,
    required); `?starttls=off` only for a relay on the same host or network that speaks no TLS."""

    hostname: str
    port: int
    username: str | None
    password: str | None
    use_tls: bool
    start_tls: bool
    sender: str

    @classmethod
    def from_url(cls, url: str, sender: str) -> Smtp:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise ValueError(
                "FABHUB_SMTP_URL must look like smtps://user:password@host or smtp://user:password@host:587"
            )
        query = parse_qs(parts.query)
        use_tls = parts.scheme == "smtps"
        start_tls = not use_tls and query.get("starttls", ["on"])[0] != "off"
        try:
            port = parts.port or (465 if use_tls else 587 if start_tls else 25)
        except ValueError:
            raise ValueError("FABHUB_SMTP_URL has a port that is not a number from 1 to 65535") from None
        return cls(
            hostname=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            use_tls=use_tls,
            start_tls=start_tls,
            sender=sender,
        )

    async def send(self, notification: dict[str, Any]) -> None:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = notification["recipient"]
        message["Subject"] = notification["subject"]
        message["Date"] = formatdate(localtime=False)
        # One id per notification: a receiver (or a mail archive) can drop the copy a crash between sending
        # and recording made.
        message["Message-ID"] = make_msgid(idstring=f"notification-{notification['id']}", domain="fabhub")
        message.set_content(notification["body"])
        if notification["attachment"] is not None:
            maintype, subtype = notification["attachment_type"].split("/", 1)
            message.add_attachment(
                bytes(notification["attachment"]),
                maintype=maintype,
                subtype=subtype,
                filename=notification["attachment_name"],
            )
        try:
            await aiosmtplib.send(
                message.as_bytes(policy=HEADERS_UNFOLDED),
                sender=parseaddr(self.sender)[1],
                recipients=[notification["recipient"]],
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                timeout=TIMEOUT_S,
            )
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise SendFailed(f"SMTP {self.hostname}:{self.port}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Robot:
    """A group robot: `kind:https://...` (the webhook URL as the service shows it), and for DingTalk and
    Feishu the signing secret when the robot has one."""

    kind: RobotKind
    url: str
    secret: str | None = None

    @classmethod
    def from_setting(cls, value: str, secret: str | None) -> Robot:
        kind, _, url = value.partition(":")
        if kind not in ROBOT_KINDS or not url.startswith(("https://", "http://")):
            raise ValueError(
                f"a robot is {' | '.join(ROBOT_KINDS)} then ':' and its webhook URL, e.g. wecom:https://..."
            )
        return cls(kind, url, secret or None)

    def request(self, text: str, now: float) -> tuple[str, dict[str, str], dict[str, Any]]:
        """URL, query parameters and JSON body for one text message."""
        if self.kind == "feishu":
            body: dict[str, Any] = {"msg_type": "text", "content": {"text": text}}
            if self.secret:
                stamp = str(int(now))
                key = f"{stamp}\n{self.secret}".encode()
                sign = base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
                body |= {"timestamp": stamp, "sign": sign}
            return self.url, {}, body
        body = {"msgtype": "text", "text": {"content": text}}
        params: dict[str, str] = {}
        if self.kind == "dingtalk" and self.secret:
            stamp = str(round(now * 1000))
            digest = hmac.new(self.secret.encode(), f"{stamp}\n{self.secret}".encode(), hashlib.sha256).digest()
            params = {"timestamp": stamp, "sign": base64.b64encode(digest).decode()}  # encoded once, by httpx
        return self.url, params, body

    async def send(self, client: httpx.AsyncClient, notification: dict[str, Any]) -> None:
        url, params, body = self.request(f"{notification['subject']}\n\n{notification['body']}", time.time())
        try:
            # Merged into the URL's own query (the robot's key or token): `params=` would replace it.
            target = httpx.URL(url).copy_merge_params(params)
            response = await client.post(target, json=body, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise SendFailed(f"{self.kind} robot: {exc!r}") from exc
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        # All three answer a refusal with HTTP 200 and an error code in the body.
        code = answer.get("errcode", answer.get("code", answer.get("StatusCode")))
        if response.status_code != 200 or code != 0:
            raise SendFailed(f"{self.kind} robot refused: HTTP {response.status_code} {response.text[:200]}")


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value of the Standard Webhooks specification: `v1,` and the base64 HMAC-SHA256,
    keyed with the secret's base64 part, of `id.timestamp.body`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


@dataclass(frozen=True, slots=True)
class Hook:
    """A registered webhook endpoint (notify.webhooks) as the sender sees it."""

    url: str
    secret: str

    async def send(self, client: httpx.AsyncClient, message_id: str, body: bytes, now: float) -> None:
        """Signed with the attempt's own time, which a receiver checks against its clock (replays are refused);
        only a 2xx answer is delivered, redirects are not followed (the specification's advice)."""
        stamp = int(now)
        headers = {
            "content-type": "application/json",
            "user-agent": "FabHub-Webhooks/1",
            "webhook-id": message_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": sign(self.secret, message_id, stamp, body),
        }
        try:
            response = await client.post(self.url, content=body, headers=headers, timeout=TIMEOUT_S)
        except httpx.HTTPError as exc:
            raise SendFailed(f"webhook {self.url}: {exc!r}") from exc
        if not response.is_success:
            raise SendFailed(f"webhook answered HTTP {response.status_code} {response.text[:200]}")
