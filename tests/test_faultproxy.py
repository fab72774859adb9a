"""The fault proxy in front of a tiny echo server: each fault looks to the client the way the real one does."""

import asyncio
import gc

import pytest

from simulators.faultproxy import FaultProxy

QUIET_S = 0.3  # how long "nothing arrives" is watched for


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


@pytest.fixture
async def loop_errors():
    """Whatever reaches the loop's exception handler (unhandled task exceptions) during the test."""
    loop = asyncio.get_running_loop()
    errors = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    gc.collect()  # "exception was never retrieved" is reported when the task is collected
    await asyncio.sleep(0)
    loop.set_exception_handler(previous)


@pytest.fixture
async def proxy(loop_errors):
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy("127.0.0.1", server.sockets[0].getsockname()[1])
    await proxy.start()
    yield proxy
    await proxy.stop()
    server.close()
    await asyncio.sleep(0.05)  # let the closed connections' tasks finish before checking for errors
    assert loop_errors == []


async def _connect(proxy):
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _roundtrip(reader, writer, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def test_pass_through_echoes_and_counts(proxy):
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"hello") == b"hello"
    assert await _roundtrip(reader, writer, b"again") == b"again"
    assert (proxy.accepted, proxy.bytes_up, proxy.bytes_down) == (1, 10, 10)
    writer.close()


async def test_blackhole_keeps_the_socket_open_but_silent(proxy):
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"before") == b"before"
    await proxy.blackhole()
    writer.write(b"lost")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(100), QUIET_S)
    assert not reader.at_eof() and not writer.is_closing()
    other_reader, other_writer = await _connect(proxy)  # still accepting
    other_writer.write(b"x")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(other_reader.read(100), QUIET_S)
    await proxy.pass_through()
    assert await _roundtrip(reader, writer, b"after") == b"after"  # same connection, data in the hole is gone
    assert proxy.accepted == 2
    writer.close()
    other_writer.close()


async def test_drop_closes_current_connections_and_accepts_new_ones(proxy):
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"ping") == b"ping"
    await proxy.drop()
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"new") == b"new"
    writer.close()


async def test_refuse_then_resume_on_the_same_port(proxy):
    port = proxy.port
    reader, writer = await _connect(proxy)
    await proxy.refuse()
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()
    with pytest.raises(ConnectionRefusedError):
        await _connect(proxy)
    await proxy.resume()
    assert proxy.port == port
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"back") == b"back"
    writer.close()


async def test_peers_closing_at_any_time(proxy):
    reader, writer = await _connect(proxy)
    writer.write(b"x" * 100_000)
    writer.close()  # the client leaves while data is in flight
    reader, writer = await _connect(proxy)
    writer.transport.abort()  # a reset rather than a clean close
    await proxy.drop()
    await proxy.drop()  # nothing left to drop
    dead = FaultProxy("127.0.0.1", proxy.port)
    await proxy.refuse()  # `dead` now forwards to a closed port
    await dead.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", dead.port)
    assert await asyncio.wait_for(reader.read(100), 5) == b""
    writer.close()
    await dead.stop()
