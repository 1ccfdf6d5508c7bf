# Sensor: an AE that registers, creates a container and posts a simulated
# temperature reading (a contentInstance) every N seconds.
#
#   python samples/sensor.py [CSE-URL] [--interval S] [--count N] [--name RN]
#
# CSE-URL defaults to http://127.0.0.1:8080 (python -m cse). Readings go to
# cse-in/<name>/readings (default name "sensor", AE-ID C<name>); re-runs reuse
# the AE and the container. --count stops after N readings (default: run
# until Ctrl-C). The container's access control policy lets the AE-IDs of
# --reader (default Cmonitor, samples/monitor.py) read and subscribe: watch
# the readings with `python samples/monitor.py`, or
#   curl -H 'X-M2M-Origin: Csensor' -H 'X-M2M-RI: 1' -H 'X-M2M-RVI: 3' \
#        http://127.0.0.1:8080/cse-in/sensor/readings/la
import argparse
import asyncio
import contextlib
import math
import random

from ae_sdk import AEClient, M2MResponseError


def reading(i: int, rng: random.Random) -> str:
    """A plausible room temperature: a slow wave plus a little noise."""
    return f"{21.0 + 1.5 * math.sin(i / 10) + rng.uniform(-0.2, 0.2):.2f}"


async def share(client: AEClient, name: str, readers: list[str]) -> None:
    """Let ``readers`` RETRIEVE, DISCOVER and subscribe to (CREATE a subscription
    under) the readings; the sensor keeps every right (docs/security.md "Access control")."""
    me = client.originator or ""
    acp = {"pv": {"acr": [{"acor": [me], "acop": 63}, {"acor": readers, "acop": 1 | 2 | 32}]},
           "pvs": {"acr": [{"acor": [me], "acop": 63}]}}
    try:
        policy = await client.create(name, 1, acp, rn="readers")
    except M2MResponseError as exc:
        if exc.rsc != 4105:  # a re-run: it exists; bring it up to date
            raise
        policy = await client.update(f"{name}/readers", acp, ty=1)
    await client.update(f"{name}/readings", {"acpi": [policy["ri"]]}, ty=3)


async def main(url: str, interval: float, count: int | None, name: str, readers: list[str]) -> None:
    rng = random.Random()
    async with AEClient(url) as client:
        await client.register(name, api="Nsensor", origin=f"C{name}")
        await client.create_container(name, "readings", mni=1000, exist_ok=True)
        if readers:
            await share(client, name, readers)
        print(f"sensor {client.originator} posting to {url}/{client.cse_name}/{name}/readings", flush=True)
        i = 0
        while count is None or i < count:
            if i:
                await asyncio.sleep(interval)
            cin = await client.create_content_instance(f"{name}/readings", reading(i, rng), cnf="text/plain:0")
            i += 1
            print(f"reading {i}: {cin['con']} ({cin['rn']})", flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Post simulated sensor readings to a CSE.")
    p.add_argument("url", nargs="?", default="http://127.0.0.1:8080", help="CSE URL (default %(default)s)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between readings (default %(default)s)")
    p.add_argument("--count", type=int, help="stop after this many readings (default: run until Ctrl-C)")
    p.add_argument("--name", default="sensor", help="the AE's resource name (default %(default)s)")
    p.add_argument("--reader", action="append", help="AE-ID allowed to read and subscribe to the readings "
                   "(repeat; default Cmonitor, samples/monitor.py; --reader '' for nobody)")
    args = p.parse_args()
    if args.count is not None and args.count < 1:
        p.error("--count must be at least 1")
    if args.interval < 0:
        p.error("--interval must not be negative")
    return args


if __name__ == "__main__":
    a = parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(a.url, a.interval, a.count, a.name, [r for r in (a.reader or ["Cmonitor"]) if r]))
