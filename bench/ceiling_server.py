"""The bare aiohttp ceiling: a small JSON body for GET and POST on any path.

Prints ``READY ceiling http://127.0.0.1:<port>`` once listening; SIGTERM stops it.
"""

import asyncio
import signal

from aiohttp import web

BODY = b'{"m2m:cb":{"ri":"id-in","rn":"cse-in","ty":5}}'


async def handle(request: web.Request) -> web.Response:
    await request.read()
    status = 201 if request.method == "POST" else 200
    return web.Response(status=status, body=BODY, content_type="application/json",
                        headers={"X-M2M-RSC": "2001" if status == 201 else "2000",
                                 "X-M2M-RI": request.headers.get("X-M2M-RI", "")})


async def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(f"READY ceiling http://127.0.0.1:{port}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


asyncio.run(main())
