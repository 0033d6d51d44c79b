#!/usr/bin/env python3
"""scripts/bench-stream.sh's measurements: idle stream clients' memory, reading latency."""

import asyncio
import json
import statistics
import sys
import time
import urllib.request

import paho.mqtt.client as mqtt

port, pid, clients, iot = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
base = f"http://127.0.0.1:{port}"


def call(method, path, body=None, token=None):
    request = urllib.request.Request(base + path, method=method,
                                     data=None if body is None else json.dumps(body).encode())
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request) as r:
        return json.loads(r.read() or b"null")


def rss_kb():
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


async def open_stream(query):
    ticket = call("POST", "/api/stream/ticket", token=token)["ticket"]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/stream?ticket={ticket}&{query} HTTP/1.1\r\nHost: bench\r\n"
                 "Accept: text/event-stream\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    assert b" 200 " in head.split(b"\r\n")[0], head
    return reader, writer


async def open_many(n):
    opened = []
    for i in range(0, n, 100):
        opened += await asyncio.gather(*(open_stream("kinds=status,alert,command")
                                         for _ in range(min(100, n - i))))
    await asyncio.sleep(3)
    return opened


async def main():
    # Warm-up: the first streams grow pools and buffers that later ones reuse.
    warm = await open_many(100)
    base = rss_kb()
    first = await open_many(clients)
    one = rss_kb()
    second = await open_many(clients)
    two = rss_kb()
    print(f"idle streams: devicehub RSS {base / 1024:.1f} MiB with 100 streams, "
          f"{one / 1024:.1f} MiB with {clients} more, {two / 1024:.1f} MiB with {2 * clients} more; "
          f"{(one - base) / clients:.1f} KiB per client for the first {clients}, "
          f"{(two - one) / clients:.1f} KiB for the next")
    for _, writer in warm + first + second:
        writer.close()

    call("POST", "/api/devices", {"device_id": "bench-live", "device_name": "Bench"}, token)
    reader, _ = await open_stream("device_id=bench-live&kinds=reading")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-stream-device")
    publisher.connect("127.0.0.1", 1883)
    publisher.loop_start()
    sent = {}
    latencies = []

    async def read_events():
        buffer = b""
        while len(latencies) < 200:
            buffer += await reader.read(65536)
            while b"\n\n" in buffer:
                block, buffer = buffer.split(b"\n\n", 1)
                for line in block.split(b"\n"):
                    if line.startswith(b"data: [") :
                        for point in json.loads(line[6:]):
                            n = int(point["value"])
                            if n in sent:
                                latencies.append(time.perf_counter() - sent.pop(n))

    task = asyncio.create_task(read_events())
    await asyncio.sleep(0.5)
    for n in range(200):
        sent[n] = time.perf_counter()
        publisher.publish(f"{iot}/bench-live/telemetry", json.dumps({"device_id": "bench-live", "power": n}), qos=1)
        await asyncio.sleep(0.02)
    await asyncio.wait_for(task, 30)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    print(f"reading latency (publish -> SSE event, {len(ms)} readings, {clients} idle clients open): "
          f"p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99) - 1]:.1f} ms, max {ms[-1]:.1f} ms")
    publisher.loop_stop()


token = call("POST", "/api/auth/login", {"username": "bench", "password": "bench-password"})["access_token"]
asyncio.run(main())
