"""Who the client is behind reverse proxies. The connection's peer is the client, unless the peer is a
proxy we were told to trust: then the client is the right-most `X-Forwarded-For` entry that is not itself a
trusted proxy (each proxy appends the address it was connected from; anything further left was written by
the client and proves nothing). `X-Forwarded-Proto` is taken from trusted proxies only, too.

FabHub applies this rule itself, as the outermost middleware, so every server and every route sees the same
client; uvicorn's own proxy handling (`proxy_headers`, `FORWARDED_ALLOW_IPS`) is switched off."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_networks(text: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """`10.0.0.1, 192.168.0.0/16, ::1` (a comma-separated string or its items) as networks; ValueError names
    an entry that is neither an address nor a network."""
    items = text.split(",") if isinstance(text, str) else list(text)
    networks = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


def _address(text: str) -> IPAddress | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:80`),
    IPv4-mapped IPv6 as IPv4; None for anything else (`unknown`, a name, garbage)."""
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:
        text = text.split(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress | None, trusted: Sequence[IPNetwork]) -> bool:
    return address is not None and any(address in network for network in trusted)


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted: Sequence[IPNetwork]) -> str | None:
    """The client's address by the rule above. `forwarded_for`: the values of every `X-Forwarded-For`
    header, in order. A malformed entry where the client should be stops the walk at the proxy that passed
    it on, so garbage never becomes an address of its own."""
    if peer is None or not _trusted(_address(peer), trusted):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",") if hop.strip()]
    client = str(_address(peer))
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return client
        client = str(address)
        if not _trusted(address, trusted):
            return client
    return client  # every hop trusted: the left-most is the nearest we know


class TrustedProxies:
    """ASGI middleware putting the client (and scheme) the rule gives into the scope, for HTTP and WebSocket; in
    place, as uvicorn's own does, so the server's access log names the client too."""

    def __init__(self, app: Any, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.trusted and scope.get("client"):
            peer_host = scope["client"][0]
            if _trusted(_address(peer_host), self.trusted):
                headers = [(k.lower(), v.decode("latin-1")) for k, v in scope.get("headers", [])]
                forwarded = [v for k, v in headers if k == b"x-forwarded-for"]
                host = client_address(peer_host, forwarded, self.trusted)
                if host != peer_host:
                    scope["client"] = (host, 0)
                proto = next((v for k, v in headers if k == b"x-forwarded-proto"), None)
                if proto is not None:
                    proto = proto.split(",")[-1].strip().lower()  # the nearest proxy's word
                    if proto in ("http", "https"):
                        secure = proto == "https"
                        scope["scheme"] = ("wss" if secure else "ws") if scope["type"] == "websocket" else proto
        await self.app(scope, receive, send)
