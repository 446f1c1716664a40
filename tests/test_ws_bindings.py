"""What a connection needs, declared with FastAPI's ``Query`` / ``Header``, is enforced at
the handshake and described in the document's ws channel bindings (valid for the official
parser)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated, Any

import pytest
from fastapi import Depends, FastAPI, Header, Query

from asyncws import AsyncWS, Connection
from asyncws.asyncapi import build_document, document_json
from asyncws.testing import TestClient, WebSocketDenied
from tests.servers import REPO_ROOT
from tests.test_asyncapi import _require_node


def login(
    user: Annotated[str, Query(pattern=r"^[a-z]{1,8}$", description="Who you are.")],
    x_tenant: Annotated[str, Header(description="Your tenant.", examples=["acme"])],
) -> dict[str, str]:
    return {"name": user, "tenant": x_tenant}


def client_version(version: Annotated[int, Query(ge=1)] = 1) -> int:
    return version


def trace(x_trace_id: str | None = Header(None)) -> str | None:
    return x_trace_id


def build() -> tuple[AsyncWS, FastAPI]:
    ws = AsyncWS(title="bindings", authenticate=login, user_id=lambda p: p["name"])

    @ws.on_connect
    def known(version: Annotated[int, Depends(client_version)]) -> bool:
        return version < 10

    @ws.operation("whoami")
    async def whoami(
        conn: Connection, trace_id: Annotated[str | None, Depends(trace)]
    ) -> dict[str, Any]:
        return {"user": conn.user_id, "principal": conn.principal, "trace": trace_id}

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    return ws, app


def test_the_binding_lists_query_and_headers_with_what_is_required() -> None:
    ws, _ = build()
    binding = build_document(ws)["channels"]["endpoint"]["bindings"]["ws"]
    assert binding["method"] == "GET" and binding["bindingVersion"] == "0.1.0"
    query, headers = binding["query"], binding["headers"]
    assert query["type"] == "object" and headers["type"] == "object"
    assert query["required"] == ["user"]  # version has a default
    assert set(query["properties"]) == {"user", "version"}
    assert query["properties"]["user"]["pattern"] == "^[a-z]{1,8}$"
    assert query["properties"]["user"]["description"].startswith("Who you are.")
    assert "refused (HTTP 403)" in query["properties"]["user"]["description"]
    assert query["properties"]["version"]["minimum"] == 1
    assert headers["required"] == ["X-Tenant"]
    assert headers["properties"]["X-Tenant"]["examples"] == ["acme"]
    assert "`whoami`" in headers["properties"]["X-Trace-Id"]["description"]  # not required


def test_the_document_passes_the_official_parser(tmp_path: Path) -> None:
    node = _require_node()
    ws, _ = build()
    path = tmp_path / "bindings.asyncapi.json"
    path.write_text(document_json(build_document(ws)), encoding="utf-8")
    result = subprocess.run(
        [node, "scripts/validate_asyncapi.mjs", "--json", str(path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    (entry,) = json.loads(result.stdout)["files"]
    assert entry["parsed"], entry["diagnostics"]
    assert [d for d in entry["diagnostics"] if d["severity"] == "error"] == []


async def test_the_handshake_enforces_them() -> None:
    _, app = build()
    async with TestClient(app) as c:
        for url, headers in [
            ("/ws", {"x-tenant": "acme"}),  # no user
            ("/ws?user=ann", {}),  # no tenant header
            ("/ws?user=ANN!", {"x-tenant": "acme"}),  # does not match the pattern
            ("/ws?user=ann&version=0", {"x-tenant": "acme"}),  # under the minimum
            ("/ws?user=ann&version=12", {"x-tenant": "acme"}),  # the hook says no
        ]:
            with pytest.raises(WebSocketDenied):
                async with c.connect(url, headers=headers):
                    pass
        async with c.connect("/ws?user=ann", headers={"x-tenant": "acme", "x-trace-id": "t1"}) as s:
            answer = await s.call("whoami")
        assert answer["data"] == {
            "user": "ann",
            "principal": {"name": "ann", "tenant": "acme"},
            "trace": "t1",
        }


async def test_an_invalid_query_parameter_in_an_operation_is_a_validation_error() -> None:
    ws = AsyncWS(title="op-query")

    @ws.operation("page")
    async def page(size: Annotated[int, Query(le=100)] = 10) -> dict[str, Any]:
        return {"size": size}

    app = FastAPI(lifespan=ws.lifespan)
    app.include_router(ws.asgi_router)
    async with TestClient(app) as c:
        async with c.connect("/ws") as s:
            assert (await s.call("page"))["data"] == {"size": 10}
        async with c.connect("/ws?size=1000") as s:
            answer = await s.call("page")
    assert answer["code"] == "validation_error"
    assert answer["errors"][0]["loc"] == ["query", "size"]
