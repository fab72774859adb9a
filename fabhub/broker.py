"""Where the MQTT broker comes from: FABHUB_MQTT_URL, else a Mosquitto found on PATH, else amqtt in this
process, so the demo needs no broker installed."""

from __future__ import annotations

import logging
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fabhub.devservices import PORT_ATTEMPTS, Mosquitto, free_port
from fabhub.settings import Settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def mqtt_broker(settings: Settings) -> AsyncIterator[str | None]:
    """None without `embedded`: a site whose devices all have their own endpoints needs no broker, and one
    that does is refused by the gateway naming FABHUB_MQTT_URL."""
    if settings.mqtt_url or not settings.embedded:
        yield settings.mqtt_url
        return
    if shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin"):
        broker = Mosquitto().start()
        log.info("FABHUB_MQTT_URL unset: started mosquitto at %s", broker.url)
        try:
            yield broker.url
        finally:
            broker.stop()
        return
    from amqtt.broker import Broker  # imported here: only the fallback needs it
    from amqtt.errors import BrokerError

    for attempt in range(PORT_ATTEMPTS):  # amqtt needs a port number: one may be taken before it binds
        port = free_port()
        embedded = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
                "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
            }
        )
        try:
            await embedded.start()
            break
        except BrokerError as exc:
            if attempt == PORT_ATTEMPTS - 1 or "already in use" not in str(exc):
                raise
    log.info("FABHUB_MQTT_URL unset: started the embedded amqtt broker on 127.0.0.1:%d", port)
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        await embedded.shutdown()
