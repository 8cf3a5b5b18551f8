"""Client registry: every protocol the load generator speaks, by name, behind one interface.

``make_client(name, image)`` builds one; :data:`DEFAULT_CLIENTS` is the matched pair that
``gvf run`` uses unless ``--clients`` says otherwise (raw bytes for FastAPI, base64 for
Gradio: both one image in, one PNG out, with the fewest HTTP calls each protocol allows).
A client speaks to one server family, or to every family (``mcp``: :meth:`Client.speaks_to`).
"""

from __future__ import annotations

from loadtests.clients.base import CallResult, Client
from loadtests.clients.fastapi_protocol import FastapiB64, FastapiRaw
from loadtests.clients.gradio_protocol import GradioB64, GradioFile, GradioQueue
from loadtests.clients.mcp_protocol import McpClient

__all__ = ["CLIENTS", "DEFAULT_CLIENTS", "SERVER_FAMILY", "CallResult", "Client", "make_client"]

CLIENTS: dict[str, type[Client]] = {
    client.name: client for client in (FastapiRaw, FastapiB64, GradioFile, GradioB64, GradioQueue, McpClient)
}
SERVER_FAMILY: dict[str, str] = {"gradio": "gradio", "fastapi": "fastapi", "fastapi-naive": "fastapi"}
DEFAULT_CLIENTS: dict[str, str] = {"gradio": "gradio-b64", "fastapi": "fastapi", "fastapi-naive": "fastapi"}


def content_type_of(image: bytes) -> str:
    if image.startswith(b"\x89PNG"):
        return "image/png"
    if image.startswith(b"\xff\xd8"):
        return "image/jpeg"
    return "application/octet-stream"


def make_client(name: str, image: bytes) -> Client:
    try:
        client_class = CLIENTS[name]
    except KeyError:
        raise ValueError(f"unknown client {name!r}; known: {', '.join(CLIENTS)}") from None
    return client_class(image, content_type_of(image))
