"""A stock third-party client (Python's `websockets`) against `syncprobe serve`.

Usage: python_client.py BASE_URL ORG
Prints one JSON line per check; exits non-zero on any failure.
"""
import asyncio
import json
import sys

import websockets


async def main(base, org):
    async with websockets.connect(f"{base}/api/ws/sync/{org}", open_timeout=10) as ws:
        connected = json.loads(await asyncio.wait_for(ws.recv(), 10))
        print(json.dumps({"check": "connected", "frame": connected}), flush=True)
        # Wait for one event that the test publishes after seeing CONNECTED.
        event = json.loads(await asyncio.wait_for(ws.recv(), 10))
        print(json.dumps({"check": "event", "frame": event}), flush=True)
        pong = await ws.ping(b"py")
        await asyncio.wait_for(pong, 10)
        print(json.dumps({"check": "ping"}), flush=True)
    async with websockets.connect(f"{base}/api/ws/echo", open_timeout=10, max_size=2**24) as ws:
        await ws.send("héllo")
        assert await asyncio.wait_for(ws.recv(), 10) == "héllo"
        blob = bytes(range(256)) * 4096
        await ws.send(blob)
        assert await asyncio.wait_for(ws.recv(), 10) == blob
        print(json.dumps({"check": "echo", "bytes": len(blob)}), flush=True)
    async with websockets.connect(f"{base}/api/ws/sync", open_timeout=10) as ws:
        try:
            await asyncio.wait_for(ws.recv(), 10)
        except websockets.ConnectionClosed as closed:
            print(json.dumps({"check": "missing-org", "code": closed.rcvd.code, "reason": closed.rcvd.reason}), flush=True)


asyncio.run(main(sys.argv[1], sys.argv[2]))
