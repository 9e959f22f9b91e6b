#!/usr/bin/env python3
"""Keep-alive MCP round trip as the official Python SDK's client makes it.

Usage: scripts/bench-python-sdk.py URL [CALLS] [NODE]
  URL    e.g. http://127.0.0.1:8080/mcp (start `labscope serve --http 127.0.0.1:8080`)
  CALLS  timed calls of get_node_networking (default 300), after 20 warm-up calls
  NODE   node to ask (default: this machine's hostname, as in local mode)

Needs `pip install mcp` (written against mcp 2.3). Prints the median and p99 in milliseconds. The SDK's
httpx client keeps one connection alive for every request, so this sees what
a per-connection cost (e.g. Nagle holding a response's last write until the
client's delayed ACK) does to a real client.
"""

import asyncio
import socket
import statistics
import sys
import time

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> None:
    url = sys.argv[1]
    calls = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    node = sys.argv[3] if len(sys.argv) > 3 else socket.gethostname()
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            await session.initialize()
            args = {"node": node}
            for _ in range(20):
                await session.call_tool("get_node_networking", args)
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                result = await session.call_tool("get_node_networking", args)
                times.append((time.perf_counter() - start) * 1000)
                if result.is_error:
                    raise SystemExit(f"get_node_networking failed: {result.content}")
    times.sort()
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"python SDK, kept-alive: {calls} calls, median {statistics.median(times):.2f} ms, p99 {p99:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
