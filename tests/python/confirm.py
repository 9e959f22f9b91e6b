#!/usr/bin/env python3
"""An operation through the official Python SDK's client, as people run it.

Usage: confirm.py URL MODE ANSWER TOOL ARGS_JSON
  URL     e.g. http://127.0.0.1:8080/mcp
  MODE    legacy (the initialize handshake: elicitation/create during the
          call) or 2026-07-28 (an InputRequiredResult, answered and retried
          by the SDK's client)
  ANSWER  accept, decline, or none (the client declares no elicitation)

Prints one JSON line: {"isError", "text", "asked": [messages]}.
Used by tests/tests/ops.rs (python_sdk_clients_are_asked_before_a_change).
"""

import asyncio
import json
import sys

import mcp_types as types
from mcp.client.client import Client


async def main() -> None:
    url, mode, answer, tool, args = sys.argv[1:6]
    asked: list[str] = []

    async def elicit(context, params):  # noqa: ANN001 - the SDK's protocol
        asked.append(getattr(params, "message", ""))
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"confirm": True})
        return types.ElicitResult(action="decline")

    callback = None if answer == "none" else elicit
    async with Client(url, mode=mode, elicitation_callback=callback) as client:
        result = await client.call_tool(tool, json.loads(args))
        text = " ".join(getattr(c, "text", "") for c in result.content)
        print(json.dumps({"isError": bool(result.is_error), "text": text, "asked": asked}))


asyncio.run(main())
