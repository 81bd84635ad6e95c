#!/usr/bin/env python3
"""A backend that slows down with its load, for the adaptive concurrency tests: each
request is answered after BASE + K x (requests in flight when it arrived, itself
included) milliseconds, as a server whose workers share a saturated resource.

    latency_backend.py [--base-ms 20] [--per-inflight-ms 2] [--port 0]

It prints "PORT <n>" once it listens. GET /__stats answers {"requests": N,
"inflight": N, "max_inflight": N, "max_delay_ms": N} (control requests are not
counted); POST /__reset zeroes the counts and the maxima. HTTP/1.1 with keep-alive, one
asyncio loop: thousands of connections cost it nothing but memory.
"""

import argparse
import asyncio
import json
import sys


class State:
    def __init__(self, base, per):
        self.base, self.per = base, per
        self.reset()

    def reset(self):
        self.requests = self.max_inflight = self.max_delay = 0
        self.inflight = getattr(self, "inflight", 0)

    def stats(self):
        return {"requests": self.requests, "inflight": self.inflight,
                "max_inflight": self.max_inflight, "max_delay_ms": self.max_delay}


def response(status, body, ctype="text/plain"):
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def serve(state, reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            if target == "/__stats":
                writer.write(response("200 OK", json.dumps(state.stats()).encode(),
                                      "application/json"))
            elif target == "/__reset" and method == "POST":
                state.reset()
                writer.write(response("200 OK", b"reset\n"))
            else:
                state.requests += 1
                state.inflight += 1
                state.max_inflight = max(state.max_inflight, state.inflight)
                delay = state.base + state.per * state.inflight
                state.max_delay = max(state.max_delay, delay)
                try:
                    await asyncio.sleep(delay / 1000.0)
                finally:
                    state.inflight -= 1
                writer.write(response("200 OK", b"ok\n"))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-ms", type=float, default=20)
    ap.add_argument("--per-inflight-ms", type=float, default=2)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    state = State(a.base_ms, a.per_inflight_ms)
    server = await asyncio.start_server(lambda r, w: serve(state, r, w), "127.0.0.1", a.port,
                                        backlog=1024)
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
