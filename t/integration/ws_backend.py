#!/usr/bin/env python3
"""A WebSocket server for rampart's WebSocket tests, on python3-websockets (10.4,
the legacy asyncio API), run as a separate process so a test can stop it by pid.

    ws_backend.py EVENTS_FILE

It listens on a kernel-chosen loopback port, prints "PORT <n>" once it does,
and appends one line per event to EVENTS_FILE (so a test sees what the server
saw): "open PATH", "closed PATH CODE REASON", "sent PATH BYTES" while flooding,
"flooded PATH BYTES" when a flood is done.

What a connection does depends on its path:
  /echo           sends every message back as it came (text or binary)
  /echo, message "close CODE REASON"   the server closes with that code instead
  /flood?bytes=N  sends N bytes in 64 KiB binary messages as fast as the client
                  takes them, then waits for the client to close
  /refuse         answers the handshake with 403 and a short body
Every handshake answer carries X-Ws-Backend: 1, and messages may be of any size.
"""

import asyncio
import http
import sys
import urllib.parse

import websockets

EVENTS = None


def event(line):
    with open(EVENTS, "a") as f:
        f.write(line + "\n")


async def process_request(path, headers):
    if path.startswith("/refuse"):
        return http.HTTPStatus.FORBIDDEN, [("Content-Type", "text/plain")], b"refused\n"
    return None


async def handler(ws, path=None):
    path = ws.path
    event(f"open {path}")
    try:
        if path.startswith("/flood"):
            query = urllib.parse.parse_qs(urllib.parse.urlparse(path).query)
            total = int(query["bytes"][0])
            block = bytes(range(256)) * 256
            done = 0
            while done < total:
                n = min(len(block), total - done)
                await ws.send(block[:n])
                done += n
                if done % (1 << 20) < len(block):
                    event(f"sent {path} {done}")
            event(f"flooded {path} {done}")
            await ws.wait_closed()
        else:
            async for message in ws:
                if isinstance(message, str) and message.startswith("close "):
                    _, code, reason = message.split(" ", 2)
                    await ws.close(int(code), reason)
                    break
                await ws.send(message)
    except websockets.ConnectionClosed:
        pass
    event(f"closed {path} {ws.close_code} {ws.close_reason}")


async def main():
    async with websockets.serve(handler, "127.0.0.1", 0, process_request=process_request,
                                max_size=None, extra_headers=[("X-Ws-Backend", "1")]) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"PORT {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    EVENTS = sys.argv[1]
    asyncio.run(main())
