"""Lab clients, run inside the client network namespace by tests/lab/test_lab.py.

The official ``ollama`` and ``openai`` SDKs talk to the Ollama imitation; the
official ``mcp`` SDK client talks to the MCP servers. Keys come from the
environment (generated per test run, in the providers' formats).

usage: lab_clients.py SERVER_ADDRESS
"""

from __future__ import annotations

import asyncio
import os
import sys

ADDR = sys.argv[1]


def ollama_clients() -> None:
    import ollama

    c = ollama.Client(host=f"http://{ADDR}:11434", timeout=10)
    print("ollama list:", [m.model for m in c.list().models])
    print("ollama chat:", c.chat(model="llama3.2:1b",
                                 messages=[{"role": "user", "content": "hi"}]).message.content)
    print("ollama pull:", c.pull("qwen2.5:0.5b").status)
    # a second client configuration: a Hugging Face token as bearer (a proxy in front)
    c2 = ollama.Client(host=f"http://{ADDR}:11434", timeout=10,
                       headers={"Authorization": f"Bearer {os.environ['LAB_HF_KEY']}"})
    print("ollama generate:", c2.generate(model="llama3.2:1b", prompt="hi").response)


def openai_client() -> None:
    import httpx
    import openai

    client = openai.OpenAI(api_key=os.environ["LAB_OPENAI_KEY"],
                           base_url=f"http://{ADDR}:11434/v1", max_retries=0,
                           http_client=httpx.Client(timeout=10))
    print("openai models:", [m.id for m in client.models.list()])
    r = client.chat.completions.create(model="llama3.2:1b",
                                       messages=[{"role": "user", "content": "hi"}])
    print("openai chat:", r.choices[0].message.content)


async def mcp_streamable() -> None:
    from mcp import Client

    async with Client(f"http://{ADDR}:8000/mcp") as client:
        tools = await client.list_tools()
        print("mcp tools:", [t.name for t in tools.tools])
        r = await client.call_tool("add", {"a": 2, "b": 3})
        print("mcp add:", r)


async def mcp_sse() -> None:
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    async with sse_client(f"http://{ADDR}:8001/sse") as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        tools = await session.list_tools()
        print("mcp-sse tools:", [t.name for t in tools.tools])
        r = await session.call_tool("lookup_weather", {"city": "Oslo"})
        print("mcp-sse weather:", r)


which = sys.argv[2] if len(sys.argv) > 2 else "all"
if which in ("all", "ollama"):
    ollama_clients()
if which in ("all", "openai"):
    openai_client()
if which in ("all", "mcp"):
    asyncio.run(mcp_streamable())
if which in ("all", "mcp-sse"):
    asyncio.run(mcp_sse())
