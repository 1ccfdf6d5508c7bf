# Monitor: an AE that prints the content (con) of every new contentInstance
# of a container -- by default samples/sensor.py's, cse-in/sensor/readings --
# until Ctrl-C.
#
#   python samples/sensor.py --count 1        # first: the sensor's AE and container (it lets Cmonitor read)
#   python samples/monitor.py [CSE-URL] [CONTAINER]   (default http://127.0.0.1:8080 sensor/readings)
#   python samples/sensor.py --interval 1     # then: every reading is printed by the monitor
#
# Re-runs reuse the AE (AE-ID Cmonitor) and replace its subscription.
import asyncio
import sys

from ae_sdk import AEClient, notified_resource, until_stopped

DEFAULTS = ("http://127.0.0.1:8080", "sensor/readings")


def show(sgn: dict[str, object]) -> None:
    if cin := notified_resource(sgn):
        print(cin.get("con"), flush=True)


async def main(url: str, watch: str) -> None:
    async with AEClient(url) as client:
        await client.start_notifications()
        await client.register("monitor", origin="Cmonitor")
        await client.subscribe(watch, show, net=(3,), rn="monitor-sub")
        print(f"monitoring {url}/{client.cse_name}/{watch} (Ctrl-C to stop)", flush=True)
        await until_stopped()  # Ctrl-C or SIGTERM (ae_sdk.stopping: why not KeyboardInterrupt)


if __name__ == "__main__":
    given = sys.argv[1:3]  # CSE-URL, CONTAINER; the rest from DEFAULTS
    asyncio.run(main(*given, *DEFAULTS[len(given):]))
