"""A worker process for the kill tests: `python -m tests.trading.ops_worker URL OP_ID POINT`.

It sends one balance operation (`operations.execute_operation`, what the job runs) and, for the
kill points it can reach by itself, dies with SIGKILL exactly there: a real `kill -9`, with no
cleanup, no rollback hook, no `finally`. POINT is one of:

- `none`: run normally;
- `wait`: connect and authenticate, print "ready", wait for a line on stdin, then run (the test
  makes the simulator slow in between and kills the process from outside mid-request);
- `before_claim`: after the operation's lock and the look, before the claim is stored;
- `before_send`: the claim is committed, the request not yet written;
- `after_execute`: the server executed it and answered, the CRM has not recorded it;
- `slow`: claimed, then 3 s before the request goes out (a sender that is alive but slow);
- `recover`: run `recover_pending(0)` instead (for two recoverers in two processes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


async def main(url: str, op_id: str, point: str) -> None:
    from app.core import db
    from app.settings import use_settings
    from app.trading import operations
    from tests.conftest import test_settings

    db.configure(url)
    use_settings(test_settings(url))
    await db.start_pool(min_size=1, max_size=4)
    operations.RESEND_MARGIN_SECONDS = int(os.environ.get("OPS_MARGIN", operations.RESEND_MARGIN_SECONDS))
    real_platform, real_send = operations._platform, operations._send

    async def platform(server_id: int) -> Any:
        plat = await real_platform(server_id)
        original = plat.balance_operation

        async def balance_operation(*args: Any, **kwargs: Any) -> int:
            if point == "before_send":
                die()
            if point == "slow":
                await asyncio.sleep(3)
            ticket = await original(*args, **kwargs)
            if point == "after_execute":
                die()
            return ticket

        plat.balance_operation = balance_operation  # type: ignore[method-assign]
        return plat

    async def send(*args: Any, **kwargs: Any) -> None:
        if point == "before_claim":
            die()
        await real_send(*args, **kwargs)

    operations._platform = platform  # type: ignore[assignment]
    operations._send = send  # type: ignore[assignment]
    if point == "wait":
        await (await real_platform((await operations._load(op_id))["server_id"])).server_time()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    if point == "recover":
        print(await operations.recover_pending(older_than_seconds=0), flush=True)
    else:
        print((await operations.execute_operation(op_id)).status, flush=True)
    await db.close_pool()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
