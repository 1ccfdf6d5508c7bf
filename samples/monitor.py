# Monitor: an AE that prints the content (con) of every new contentInstance
# of its container cse-in/monitor/data, until Ctrl-C.
#
#   python samples/monitor.py [CSE-URL]        (default http://127.0.0.1:8080)
#
# Re-runs reuse the AE (AE-ID Cmonitor) and the container, and replace the
# subscription. Try it: POST a contentInstance (ty=4) to /cse-in/monitor/data
# with X-M2M-Origin Cmonitor (or the admin), as in the README's curl guide.
import asyncio
import contextlib
import sys

from ae_sdk import AEClient, notified_resource


def show(sgn: dict[str, object]) -> None:
    if cin := notified_resource(sgn):
        print(cin.get("con"), flush=True)


async def main(url: str) -> None:
    async with AEClient(url) as client:
        await client.start_notifications()
        await client.register("monitor", origin="Cmonitor")
        await client.create_container("monitor", "data", exist_ok=True)
        await client.subscribe("monitor/data", show, net=(3,), rn="monitor-sub", replace=True)
        print(f"monitoring {url}/cse-in/monitor/data (Ctrl-C to stop)", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080"))
