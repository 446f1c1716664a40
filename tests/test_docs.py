"""The HTML docs page (asyncws.docs): pure rendering, no browser (see test_docs_browser.py).

The page is rendered from two AsyncAPI 3.0.0 documents of the chat example: the one the
generator makes (`asyncws.asyncapi.build_document`: envelope payloads, ack/error replies,
subscribe operations) and a hand-written fixture (`chat_fixture`) with what the generated
one lacks (contact, license, servers with security, data-only payloads, a discriminated
union); single tests add enums, cycles, huge schemas and hostile text to the fixture.
"""

from __future__ import annotations

import copy
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import yaml

from asyncws.docs import render_html, write_static

# -- the documents ----------------------------------------------------------------------------

_ROOM = {
    "type": "string",
    "pattern": "^[a-z0-9-]{1,32}$",
    "description": "A room name",
    "title": "Room",
}
_USER = {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$", "description": "A user name"}


def chat_fixture() -> dict[str, Any]:
    """A hand-written AsyncAPI 3.0.0 document of examples/chat/app.py."""

    def msg(name: str, schema: str, summary: str, example: Any | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": name,
            "title": schema,
            "summary": summary,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{schema}"},
        }
        if example is not None:
            out["examples"] = [{"name": "example", "payload": example}]
        return out

    def ref(pointer: str) -> dict[str, str]:
        return {"$ref": pointer}

    room_param = {"description": "A room name", "examples": ["lobby", "general"]}
    return {
        "asyncapi": "3.0.0",
        "id": "urn:asyncws:chat",
        "info": {
            "title": "asyncws chat",
            "version": "1.0.0",
            "description": (
                "A chat with rooms, typing indicators and direct messages.\n\n"
                "Connect to `/ws?user=NAME`, subscribe to `rooms/{room}`, then `post`."
            ),
            "contact": {"name": "asyncws", "email": "chat@example.invalid"},
            "license": {"name": "MIT"},
            "tags": [{"name": "chat", "description": "Rooms and messages"}],
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8000",
                "protocol": "ws",
                "pathname": "/ws",
                "description": "The development server",
                "security": [ref("#/components/securitySchemes/user")],
            }
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "title": "The websocket endpoint",
                "description": "Every client frame goes here; answers and events come back.",
                "messages": {
                    "post": ref("#/components/messages/post"),
                    "join": ref("#/components/messages/join"),
                    "typing": ref("#/components/messages/typing"),
                    "direct": ref("#/components/messages/direct"),
                    "whoami": ref("#/components/messages/whoami"),
                    "Receipt": ref("#/components/messages/Receipt"),
                    "Me": ref("#/components/messages/Me"),
                    "ack": ref("#/components/messages/ack"),
                    "error": ref("#/components/messages/error"),
                },
            },
            "rooms.room": {
                "address": "rooms/{room}",
                "description": "Everything that happens in a room: posts and arrivals.",
                "parameters": {"room": room_param},
                "messages": {
                    "posted": ref("#/components/messages/posted"),
                    "joined": ref("#/components/messages/joined"),
                },
            },
            "rooms.room.typing": {
                "address": "rooms/{room}/typing",
                "description": "Typing indicators of a room.",
                "parameters": {"room": room_param},
                "messages": {"Typing": ref("#/components/messages/Typing")},
            },
            "users.user.inbox": {
                "address": "users/{user}/inbox",
                "description": "Private messages to one user. Only that user may subscribe.",
                "parameters": {"user": {"description": "A user name", "examples": ["ann"]}},
                "messages": {"DirectMessage": ref("#/components/messages/DirectMessage")},
            },
        },
        "operations": {
            "post": {
                "action": "receive",
                "channel": ref("#/channels/ws"),
                "summary": "Post a message to a room; every subscriber of the room receives it.",
                "messages": [ref("#/channels/ws/messages/post")],
                "reply": {
                    "channel": ref("#/channels/ws"),
                    "messages": [ref("#/channels/ws/messages/Receipt")],
                },
                "tags": [{"name": "chat"}],
            },
            "join": {
                "action": "receive",
                "channel": ref("#/channels/ws"),
                "summary": "Tell a room you arrived (subscribe to `rooms/{room}` to see it).",
                "messages": [ref("#/channels/ws/messages/join")],
            },
            "typing": {
                "action": "receive",
                "channel": ref("#/channels/ws"),
                "summary": "Say you are typing in a room.",
                "messages": [ref("#/channels/ws/messages/typing")],
            },
            "direct": {
                "action": "receive",
                "channel": ref("#/channels/ws"),
                "summary": "Send a private message to a user's inbox.",
                "messages": [ref("#/channels/ws/messages/direct")],
            },
            "whoami": {
                "action": "receive",
                "channel": ref("#/channels/ws"),
                "summary": "Who the server thinks you are.",
                "messages": [ref("#/channels/ws/messages/whoami")],
                "reply": {
                    "channel": ref("#/channels/ws"),
                    "messages": [ref("#/channels/ws/messages/Me")],
                },
            },
            "rooms.room": {
                "action": "send",
                "channel": ref("#/channels/rooms.room"),
                "summary": "Posts and arrivals in a room.",
                "messages": [
                    ref("#/channels/rooms.room/messages/posted"),
                    ref("#/channels/rooms.room/messages/joined"),
                ],
            },
            "rooms.room.typing": {
                "action": "send",
                "channel": ref("#/channels/rooms.room.typing"),
                "messages": [ref("#/channels/rooms.room.typing/messages/Typing")],
            },
            "users.user.inbox": {
                "action": "send",
                "channel": ref("#/channels/users.user.inbox"),
                "messages": [ref("#/channels/users.user.inbox/messages/DirectMessage")],
            },
        },
        "components": {
            "securitySchemes": {
                "user": {
                    "type": "httpApiKey",
                    "in": "query",
                    "name": "user",
                    "description": "Demo: the user name in the query string.",
                }
            },
            "messages": {
                "post": msg(
                    "post", "Post", "Post a message in a room.", {"room": "lobby", "text": "Hi!"}
                ),
                "join": msg("join", "TypingIn", "Arrive in a room.", {"room": "lobby"}),
                "typing": msg("typing", "TypingIn", "Typing in a room.", {"room": "lobby"}),
                "direct": msg("direct", "Direct", "A private message to send."),
                "whoami": {"name": "whoami", "summary": "Ask who you are (no payload)."},
                "Receipt": msg("Receipt", "Receipt", "What the server answers to a post."),
                "Me": msg("Me", "Me", "Who you are."),
                "posted": msg(
                    "posted",
                    "Posted",
                    "A message posted in a room.",
                    {"type": "posted", "user": "ann", "text": "Hi!", "at": "2025-01-01T00:00:00Z"},
                ),
                "joined": msg("joined", "Joined", "Someone subscribed to the room."),
                "Typing": msg("Typing", "Typing", "Someone is typing in a room."),
                "DirectMessage": msg("DirectMessage", "DirectMessage", "A private message."),
                "ack": {
                    "name": "ack",
                    "summary": "The frame was handled and had nothing to return.",
                    "payload": {
                        "type": "object",
                        "properties": {
                            "type": {"const": "ack"},
                            "id": ref("#/components/schemas/FrameId"),
                        },
                    },
                },
                "error": msg("error", "Error", "A frame could not be handled."),
            },
            "schemas": {
                "FrameId": {
                    "anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 64}],
                    "description": "Chosen by the client; echoed by the answer.",
                },
                "Post": {
                    "type": "object",
                    "title": "Post",
                    "description": "Post a message in a room.",
                    "properties": {
                        "room": _ROOM,
                        "text": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 2000,
                            "examples": ["Hello, world!"],
                            "title": "Text",
                        },
                    },
                    "required": ["room", "text"],
                },
                "TypingIn": {
                    "type": "object",
                    "properties": {"room": _ROOM},
                    "required": ["room"],
                },
                "Direct": {
                    "type": "object",
                    "description": "Send a private message to a user.",
                    "properties": {
                        "to": _USER,
                        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
                    },
                    "required": ["to", "text"],
                },
                "Receipt": {
                    "type": "object",
                    "properties": {
                        "room": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["room", "at"],
                },
                "Me": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "connection_id": {"type": "string"}},
                    "required": ["name", "connection_id"],
                },
                "Posted": {
                    "type": "object",
                    "description": "A message posted in a room.",
                    "properties": {
                        "type": {"const": "posted", "default": "posted", "type": "string"},
                        "user": {"type": "string"},
                        "text": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["user", "text", "at"],
                },
                "Joined": {
                    "type": "object",
                    "description": "Someone subscribed to the room.",
                    "properties": {
                        "type": {"const": "joined", "default": "joined", "type": "string"},
                        "user": {"type": "string"},
                    },
                    "required": ["user"],
                },
                "RoomEvent": {
                    "oneOf": [
                        ref("#/components/schemas/Posted"),
                        ref("#/components/schemas/Joined"),
                    ],
                    "discriminator": "type",
                },
                "Typing": {
                    "type": "object",
                    "properties": {"user": {"type": "string"}},
                    "required": ["user"],
                },
                "DirectMessage": {
                    "type": "object",
                    "properties": {
                        "from": {"type": "string"},
                        "text": {"type": "string"},
                        "at": {"type": "string", "format": "date-time"},
                    },
                    "required": ["from", "text", "at"],
                },
                "Error": {
                    "type": "object",
                    "properties": {
                        "type": {"const": "error"},
                        "id": ref("#/components/schemas/FrameId"),
                        "code": {
                            "type": "string",
                            "enum": [
                                "invalid_json",
                                "invalid_frame",
                                "unknown_type",
                                "validation_error",
                                "forbidden",
                            ],
                        },
                        "message": {"type": "string"},
                        "errors": {
                            "type": "array",
                            "items": ref("#/components/schemas/FieldError"),
                        },
                    },
                    "required": ["type", "code", "message"],
                },
                "FieldError": {
                    "type": "object",
                    "properties": {
                        "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                        "msg": {"type": "string"},
                    },
                },
            },
        },
    }


def generated_document() -> dict[str, Any]:
    """The document the generator makes of the chat example."""
    from asyncws.asyncapi import build_document
    from examples.chat.app import ws

    return build_document(ws)


# -- helpers ----------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects ids, the JSON island, the attributes with URLs and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.urls: list[str] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._script: dict[str, str | None] | None = None
        self._buffer: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        if found.get("id"):
            self.ids.add(str(found["id"]))
        for name in ("href", "src", "action", "formaction", "srcset", "poster", "data"):
            if found.get(name):
                self.urls.append(str(found[name]))
        if tag == "script":
            self._script = found
            self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.scripts.append((self._script, "".join(self._buffer)))
            self._script = None

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._buffer.append(data)
        else:
            self.text.append(data)


def parse(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    parser.close()
    return parser


def island(page: str) -> dict[str, Any]:
    parsed = parse(page)
    found = [body for attrs, body in parsed.scripts if attrs.get("id") == "asyncws-data"]
    assert len(found) == 1
    data: dict[str, Any] = json.loads(found[0])
    return data


def resolve(document: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node_ref = node["$ref"]
        node = document
        for token in node_ref[2:].split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
    return node


def expected_badge(document: dict[str, Any], op: dict[str, Any]) -> str:
    """SEND; REQUEST when the reply can carry data (not only ack/error); else RECEIVE."""
    if op["action"] == "send":
        return "SEND"
    reply = resolve(document, op.get("reply"))
    if not reply:
        return "RECEIVE"
    kinds = []
    for message in reply.get("messages", []):
        payload = resolve(document, resolve(document, message).get("payload", {}))
        kinds.append(resolve(document, payload.get("properties", {}).get("type", {})).get("const"))
    return "REQUEST" if not kinds or any(k not in ("ack", "error") for k in kinds) else "RECEIVE"


def anchor(kind: str, key: str) -> str:
    return kind + "-" + (re.sub(r"[^A-Za-z0-9_-]+", "-", key).strip("-") or "x")


def message_names(document: dict[str, Any]) -> set[str]:
    names = set()
    for key, message in document.get("components", {}).get("messages", {}).items():
        names.add(message.get("name", key))
    for channel in document.get("channels", {}).values():
        for key, message in channel.get("messages", {}).items():
            if "$ref" not in message:
                names.add(message.get("name", key))
    return names


# -- the chat document ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["fixture", "generated"])
def document(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Both: the fixture has what the generator may leave out (contact, license, security
    schemes, data-only payloads); the generated one is what the app serves."""
    if request.param == "fixture":
        return chat_fixture()
    return generated_document()


@pytest.fixture(scope="module")
def page(document: dict[str, Any]) -> str:
    return render_html(document, "/ws")


def test_every_operation_message_and_channel_is_on_the_page(
    document: dict[str, Any], page: str
) -> None:
    parsed = parse(page)
    text = html.unescape(" ".join(parsed.text))
    for key, op in document["operations"].items():
        assert key in text
        assert anchor("op", key) in parsed.ids
        card = page.split(f'id="{anchor("op", key)}"', 1)[1].split("</article>", 1)[0]
        assert f">{expected_badge(document, op)}<" in card
    for channel in document["channels"].values():
        assert channel["address"] in text
    for name in message_names(document):
        assert name in text
    # the chat's own operations, whatever document this is
    for op in ("post", "join", "typing", "direct", "whoami"):
        assert op in document["operations"]
        assert f'data-op="{op}"' in page
    assert expected_badge(document, document["operations"]["post"]) == "REQUEST"
    assert expected_badge(document, document["operations"]["whoami"]) == "REQUEST"
    assert expected_badge(document, document["operations"]["join"]) == "RECEIVE"
    # the room events' send operation (its key: `roomsRoom` generated, `rooms.room` by hand)
    events = next(k for k in ("roomsRoom", "rooms.room") if k in document["operations"])
    assert expected_badge(document, document["operations"][events]) == "SEND"


def test_structure_toc_badges_and_links(page: str) -> None:
    parsed = parse(page)
    for anchor in ("info", "console", "operations", "channels", "messages"):
        assert anchor in parsed.ids
        assert f'href="#{anchor}"' in page
    assert ">REQUEST<" in page and ">RECEIVE<" in page and ">SEND<" in page
    assert 'href="asyncapi.json"' in page and 'href="asyncapi.yaml"' in page
    assert "<details" in page and "<summary" in page
    # every in-page link points to an element of the page
    missing = {u[1:] for u in parsed.urls if u.startswith("#")} - parsed.ids
    assert not missing


def test_schema_trees_show_types_constraints_and_refs(page: str) -> None:
    text = html.unescape(page)
    for fact in ("minLength", "maxLength", "pattern", "^[a-z0-9-]{1,32}$", "required", "date-time"):
        assert fact in text
    assert "Hello, world!" in text  # a schema example
    assert "posted" in text


def test_union_with_discriminator_enum_default_and_cycle() -> None:
    document = chat_fixture()
    schemas = document["components"]["schemas"]
    schemas["Tree"] = {
        "type": "object",
        "properties": {
            "kind": {"type": "string", "enum": ["leaf", "node"], "default": "leaf"},
            "children": {"type": "array", "items": {"$ref": "#/components/schemas/Tree"}},
            "self": {"$ref": "#/components/schemas/Tree"},
        },
    }
    document["components"]["messages"]["tree"] = {
        "name": "tree",
        "payload": {"$ref": "#/components/schemas/Tree"},
    }
    page = html.unescape(render_html(document, "/ws"))
    assert "one of" in page and "discriminator" in page
    assert '"leaf"' in page and '"node"' in page  # enum values
    assert "default" in page
    assert "recursive" in page  # the cycle is cut, not followed
    assert "Posted" in page and "Joined" in page
    assert '"invalid_json"' in page  # the error code enum


def test_examples_are_pretty_json(page: str) -> None:
    text = html.unescape(page)
    frames = {op["id"]: op["frame"] for op in island(page)["operations"]}
    assert frames["post"].startswith('{\n  "type": "post",\n  "id": 1,\n  "data": {')
    for frame in frames.values():
        assert f'<pre class="json">{frame}</pre>' in text
    assert '"topic": "rooms/' in text  # an example event


def test_console_data_round_trips(document: dict[str, Any], page: str) -> None:
    data = island(page)
    assert data["title"] == document["info"]["title"]
    assert data["path"] == "/ws"
    ops = {op["id"]: op for op in data["operations"]}
    assert {"post", "join", "typing", "direct", "whoami"} <= set(ops)
    post = json.loads(ops["post"]["frame"])
    assert post["type"] == "post" and isinstance(post["id"], int)
    assert post["data"]["text"]
    assert "data" not in json.loads(ops["whoami"]["frame"])  # no payload
    topics = {t["address"]: t for t in data["topics"]}
    # the generated document has the presence topic too; the hand-written fixture has not
    assert set(topics) - {"rooms/{room}/members"} == {
        "rooms/{room}",
        "rooms/{room}/typing",
        "users/{user}/inbox",
    }
    assert [p["name"] for p in topics["rooms/{room}"]["params"]] == ["room"]
    # the example post goes to the room the Subscribe form starts with
    assert post["data"]["room"] == topics["rooms/{room}"]["params"][0]["value"]
    assert re.fullmatch(r"[a-z0-9-]{1,32}", post["data"]["room"])
    assert data["events"]["posted"].startswith("message-")


def test_descriptions_render_a_safe_markdown_subset() -> None:
    document = chat_fixture()
    document["info"]["description"] = (
        "Intro with ``double`` and `single` code, **bold** and <b>no html</b>.\n\n"
        "- `one`: first\n  continued\n- two\n\n"
        "| code | meaning |\n| --- | --- |\n| 1000 | normal |\n\n"
        "[a link](https://example.com)"
    )
    page = render_html(document)
    assert "<code>double</code>" in page and "<code>single</code>" in page
    assert "<strong>bold</strong>" in page and "&lt;b&gt;no html&lt;/b&gt;" in page
    assert "<li><code>one</code>: first continued</li><li>two</li>" in page
    assert "<th>code</th><th>meaning</th>" in page and "<td>1000</td><td>normal</td>" in page
    assert 'href="https' not in page  # links in descriptions stay text


def test_enum_parameters_reach_the_console() -> None:
    document = chat_fixture()
    document["channels"]["rooms.room"]["parameters"]["room"] = {"enum": ["lobby", "ops"]}
    data = island(render_html(document))
    topic = next(t for t in data["topics"] if t["address"] == "rooms/{room}")
    assert topic["params"][0]["enum"] == ["lobby", "ops"]
    assert topic["params"][0]["value"] == "lobby"
    assert data["path"] == "/ws"  # from the endpoint channel when not given
    assert data["query"] == "?user="  # from the httpApiKey-in-query scheme


_EVIL = "</script><img src=x onerror=alert(1)> & \"quotes\" 'single' / <!-- -->"


def test_hostile_text_is_escaped_everywhere() -> None:
    document = chat_fixture()
    document["info"]["title"] = _EVIL
    document["info"]["description"] = _EVIL
    document["info"]["tags"] = [{"name": _EVIL, "description": _EVIL}]
    document["info"]["contact"] = {"name": _EVIL, "url": "javascript:alert(1)"}
    document["operations"][_EVIL] = copy.deepcopy(document["operations"]["post"])
    document["operations"][_EVIL]["summary"] = _EVIL
    document["components"]["schemas"]["Post"]["properties"]["text"]["examples"] = [_EVIL]
    document["components"]["schemas"]["Post"]["properties"][_EVIL] = {"description": _EVIL}
    document["channels"]["rooms.room"]["parameters"]["room"] = {"enum": [_EVIL]}
    page = render_html(document, ws_url_path=_EVIL)
    assert "<img" not in page
    assert "</script><" not in page
    assert "<!-- -->" not in page
    assert not any(u.lower().startswith("javascript:") for u in parse(page).urls)
    # exactly two script elements, both closed where they should be
    parsed = parse(page)
    assert [attrs.get("type") for attrs, _ in parsed.scripts] == ["application/json", None]
    assert parsed.tags.count("script") == 2
    data = island(page)
    assert data["title"] == _EVIL
    assert data["path"] == _EVIL
    assert any(op["id"] == _EVIL for op in data["operations"])
    topic = next(t for t in data["topics"] if t["address"] == "rooms/{room}")
    assert topic["params"][0]["enum"] == [_EVIL]
    assert _EVIL in html.unescape(" ".join(parsed.text))  # shown, as text


def test_self_contained_no_external_urls(page: str) -> None:
    assert not re.search(r"(https?|ftp):/", page, re.IGNORECASE)
    assert not re.search(r"""(src|href|action)\s*=\s*["']?//""", page, re.IGNORECASE)
    parsed = parse(page)
    for url in parsed.urls:
        assert not url.startswith("//"), url
        assert re.match(r"^(#|asyncapi\.(json|yaml)$|data:,$|mailto:)", url), url
    assert "url(" not in page
    assert "@import" not in page
    script = next(body for attrs, body in parsed.scripts if attrs.get("type") is None)
    for forbidden in (
        "eval(",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "Function(",
    ):
        assert forbidden not in script
    assert "default-src 'none'" in page  # the CSP meta


def test_csp_hash_matches_the_inline_script(page: str) -> None:
    import base64
    import hashlib

    parsed = parse(page)
    script = next(body for attrs, body in parsed.scripts if attrs.get("type") is None)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"'sha256-{digest}'" in page


def test_size_is_reasonable(page: str) -> None:
    assert len(page.encode()) < 300_000


def test_huge_or_deep_schemas_are_bounded() -> None:
    document = chat_fixture()
    deep: dict[str, Any] = {"type": "string"}
    for i in range(60):
        deep = {"type": "object", "properties": {f"level{i}": deep}}
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(3000)}}
    document["components"]["schemas"]["Post"] = {
        "type": "object",
        "properties": {"deep": deep, "wide": wide},
    }
    page = render_html(document, "/ws")
    assert "cut: too deep or too large" in page
    assert len(page.encode()) < 2_000_000


def test_document_without_optional_parts() -> None:
    page = render_html({"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"}})
    assert "<h1>t</h1>" in page
    data = island(page)
    assert data["operations"] == [] and data["topics"] == []
    assert data["path"] == ""


def test_write_static(tmp_path: Path, document: dict[str, Any]) -> None:
    index = write_static(document, tmp_path / "site")
    assert index == tmp_path / "site" / "index.html"
    assert json.loads((tmp_path / "site" / "asyncapi.json").read_text()) == json.loads(
        json.dumps(document, default=str)
    )
    assert yaml.safe_load((tmp_path / "site" / "asyncapi.yaml").read_text())["asyncapi"] == "3.0.0"
    page = index.read_text()
    assert 'href="asyncapi.json"' in page
    assert island(page)["path"] == "/ws"


@pytest.mark.parametrize("name", ["shop", "minimal", "keyed"])
def test_renders_what_the_generator_makes_of_other_apps(name: str) -> None:
    """The generator's own test apps: auth schemes, endpoint path parameters, enum topic
    parameters, recursive models, client-publish topics."""
    from asyncws.asyncapi import build_document
    from tests import asyncapi_apps

    document = build_document(getattr(asyncapi_apps, name))
    page = render_html(document, "/ws")
    parsed = parse(page)
    assert {u[1:] for u in parsed.urls if u.startswith("#")} <= parsed.ids
    for key, op in document["operations"].items():
        card = page.split(f'id="{anchor("op", key)}"', 1)[1].split("</article>", 1)[0]
        assert f">{expected_badge(document, op)}<" in card
    data = island(page)
    for op in data["operations"]:
        frame = json.loads(op["frame"])
        assert frame["type"] == op["type"] and isinstance(frame["id"], int)
    for topic in data["topics"]:
        channel = next(c for c in document["channels"].values() if c["address"] == topic["address"])
        for param in topic["params"]:
            enum = channel.get("parameters", {}).get(param["name"], {}).get("enum")
            assert param["enum"] == [str(v) for v in enum or []]
            assert not enum or param["value"] in param["enum"]
