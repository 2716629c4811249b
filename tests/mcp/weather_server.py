"""A tiny MCP server for promptloom's tests (the `mcp` PyPI package, MCPServer): over stdio,
or with `--http PORT` over streamable HTTP on 127.0.0.1:PORT/mcp.

Tools:
- get_current_weather(location, unit): the article's function, always 72 degrees, sunny and
  windy; each call is appended to $WEATHER_CALL_LOG when set (the tests read it back);
- fail(): a tool that reports an error (isError = true).
"""

import json
import os
import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("promptloom-test-weather")


@server.tool()
def get_current_weather(location: str, unit: str = "fahrenheit") -> str:
    """Get the current weather in a given location"""
    log = os.environ.get("WEATHER_CALL_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"location": location, "unit": unit}) + "\n")
    return json.dumps(
        {"location": location, "temperature": "72", "unit": unit, "forecast": ["sunny", "windy"]}
    )


@server.tool()
def fail() -> str:
    """Always fails"""
    raise ValueError("the weather station is down")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")
