import asyncio

from app.core import db, live
from app.core.live import Hub


async def test_the_hub_listens_again_after_its_connection_is_killed(database):
    hub = Hub()
    await hub.start()
    try:
        queue = hub.subscribe({"client:1"})
        old_pid = hub._conn.get_server_pid()
        await db.fetch("SELECT pg_terminate_backend({})", old_pid)
        for _ in range(100):
            await asyncio.sleep(0.1)
            if hub._conn is not None and not hub._conn.is_closed() and hub._conn.get_server_pid() != old_pid:
                break
        assert hub._conn.get_server_pid() != old_pid
        await live.publish("client:1", "message.created", message_id=7)
        event = await asyncio.wait_for(queue.get(), timeout=5)
        assert event.type == "message.created" and event.ids == {"message_id": 7}
    finally:
        await hub.stop()
