"""The generated AsyncAPI 3.0.0 documents: valid for the official parser, consistent,
deterministic, equal to the golden files, and served over HTTP.

The official check runs ``node scripts/validate_asyncapi.mjs`` (``@asyncapi/parser``, pinned
in package.json). Without node or node_modules the test skips locally and fails under CI
(env ``CI`` set), where scripts/install must have run ``npm ci``.

Regenerate the golden files and specs/chat.asyncapi.yaml with ``ASYNCWS_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI
from pydantic import BaseModel

from asyncws import AsyncWS, CloseCode, ErrorCode, InvalidTopicError, Router
from asyncws.asyncapi import (
    build_document,
    describe,
    document_json,
    document_yaml,
)
from asyncws.asyncapi.checks import check_document
from asyncws.asyncapi.examples import MISSING, example_for, string_for
from asyncws.asyncapi.model import CLOSE_CODES, ERROR_CODES
from asyncws.asyncapi.schemas import COMPONENT_KEY, make_validator
from asyncws.asyncapi.v3 import subscription_regex, topic_regex
from asyncws.topics import validate_pattern
from examples.chat import app as chat
from examples.jwt import app as jwt_example
from tests import asyncapi_apps
from tests.servers import REPO_ROOT

APPS: dict[str, AsyncWS] = {
    "chat": chat.ws,
    "shop": asyncapi_apps.shop,
    "minimal": asyncapi_apps.minimal,
    "keyed": asyncapi_apps.keyed,
    "jwt": jwt_example.ws,
}
TARGETS = {
    "chat": "examples.chat.app:ws",
    "shop": "tests.asyncapi_apps:shop",
    "minimal": "tests.asyncapi_apps:minimal",
    "keyed": "tests.asyncapi_apps:keyed",
    "jwt": "examples.jwt.app:ws",
}
GOLDEN = REPO_ROOT / "tests" / "golden"
SPECS = REPO_ROOT / "specs"
UPDATE = os.environ.get("ASYNCWS_UPDATE_GOLDEN") == "1"


def _documents() -> dict[str, dict[str, Any]]:
    return {name: build_document(app) for name, app in APPS.items()}


# -- the official parser --------------------------------------------------------------------


def _require_node() -> str:
    node = shutil.which("node")
    parser = REPO_ROOT / "node_modules" / "@asyncapi" / "parser"
    problem = None
    if node is None:
        problem = "node is not installed"
    elif not parser.is_dir():
        problem = "node_modules/@asyncapi/parser is missing (run `npm ci`)"
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"{problem}, but CI is set: scripts/install must provide it", False)
        pytest.skip(problem)
    assert node is not None
    return node


@pytest.fixture(scope="module")
def parser_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every generated document and every committed spec, through the official parser once."""
    node = _require_node()
    folder = tmp_path_factory.mktemp("documents")
    files: dict[str, Path] = {}
    for name, document in _documents().items():
        files[name] = folder / f"{name}.asyncapi.json"
        files[name].write_text(document_json(document), encoding="utf-8")
    for spec in sorted(SPECS.glob("*.yaml")):
        files[f"specs/{spec.name}"] = spec
    result = subprocess.run(
        [node, "scripts/validate_asyncapi.mjs", "--json", *map(str, files.values())],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    by_file = {entry["file"]: entry for entry in json.loads(result.stdout)["files"]}
    return {name: by_file[str(path)] for name, path in files.items()}


PARSED = [*APPS, "specs/chat.asyncapi.yaml", "specs/echo.asyncapi.yaml"]


@pytest.mark.parametrize("name", PARSED)
def test_official_parser_reports_no_error(
    name: str, parser_results: dict[str, dict[str, Any]]
) -> None:
    result = parser_results[name]
    errors = [d for d in result["diagnostics"] if d["severity"] == "error"]
    assert result["parsed"], result["diagnostics"]
    assert errors == []
    # Nothing but the note that 3.1.0 exists (we write 3.0.0 on purpose).
    others = [d["code"] for d in result["diagnostics"]]
    assert set(others) <= {"asyncapi-latest-version"}, result["diagnostics"]


def test_every_committed_spec_is_parsed(parser_results: dict[str, dict[str, Any]]) -> None:
    assert {f"specs/{p.name}" for p in SPECS.glob("*.yaml")} <= set(parser_results)


def test_validator_script_fails_on_an_invalid_document(tmp_path: Path) -> None:
    node = _require_node()
    bad = copy.deepcopy(build_document(asyncapi_apps.minimal))
    del bad["channels"]["endpoint"]["messages"]["ping"]  # the operation's message is gone
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    result = subprocess.run(
        [node, "scripts/validate_asyncapi.mjs", str(path)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert " error " in result.stdout


# -- consistency ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", APPS)
def test_document_is_consistent(name: str) -> None:
    assert check_document(build_document(APPS[name])) == []


@pytest.mark.parametrize("name", APPS)
def test_every_message_has_a_valid_example(name: str) -> None:
    document = build_document(APPS[name])
    for key, message in document["components"]["messages"].items():
        assert message.get("examples"), f"message {key} has no example"
        validator = make_validator(message["payload"], document)
        for example in message["examples"]:
            errors = [e.message for e in validator.iter_errors(example["payload"])]
            assert errors == [], (key, example)


def _walk(obj: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from _walk(item)


@pytest.mark.parametrize("name", APPS)
def test_keys_and_references(name: str) -> None:
    document = build_document(APPS[name])
    for section, entries in document["components"].items():
        for key in entries:
            assert COMPONENT_KEY.match(key), (section, key)
    for section in ("channels", "operations"):
        for key in document[section]:
            assert COMPONENT_KEY.match(key), (section, key)
    for key, value in _walk(document):
        if key == "discriminator":
            assert isinstance(value, str)  # AsyncAPI's discriminator is a property name
        assert key not in ("$defs", "prefixItems", "definitions"), key
        if key == "$ref":
            assert value.startswith("#/"), value


@pytest.mark.parametrize("name", APPS)
def test_every_address_parameter_is_declared(name: str) -> None:
    document = build_document(APPS[name])
    for key, channel in document["channels"].items():
        names = set(re.findall(r"\{([^}]+)\}", channel["address"]))
        assert names == set(channel.get("parameters", {})), key


def test_error_and_close_codes_are_all_described() -> None:
    assert set(ERROR_CODES) == set(ErrorCode)
    assert set(CLOSE_CODES) == set(CloseCode)
    document = build_document(chat.ws)
    code = document["components"]["schemas"]["AsyncwsErrorCode"]
    assert code["enum"] == [c.value for c in ErrorCode]
    for c in ErrorCode:
        assert f"`{c.value}`" in code["description"]
    closes = document["channels"]["endpoint"]["x-asyncws-close-codes"]
    assert set(closes) == {str(int(c)) for c in CloseCode}


# -- content --------------------------------------------------------------------------------


def test_chat_document_shape() -> None:
    document = build_document(chat.ws)
    assert document["asyncapi"] == "3.0.0"
    assert document["info"]["title"] == "asyncws chat"
    assert document["defaultContentType"] == "application/json"
    assert document["servers"] == {"default": {"host": "localhost:8000", "protocol": "ws"}}
    assert list(document["channels"]) == [
        "endpoint",
        "roomsRoom",
        "roomsRoomTyping",
        "members",
        "usersUserInbox",
    ]
    assert document["channels"]["endpoint"]["address"] == "/ws"
    room = document["channels"]["roomsRoom"]
    assert room["address"] == "rooms/{room}"
    assert "^[a-z0-9-]{1,32}$" in room["parameters"]["room"]["description"]
    ops = document["operations"]
    assert {k: v["action"] for k, v in ops.items()} == {
        "post": "receive",
        "join": "receive",
        "typing": "receive",
        "direct": "receive",
        "whoami": "receive",
        "roomsRoom": "send",
        "subscribeRoomsRoom": "receive",
        "roomsRoomTyping": "send",
        "subscribeRoomsRoomTyping": "receive",
        "members": "send",  # its events: join and leave (presence)
        "subscribeMembers": "receive",
        "presenceMembers": "receive",
        "presenceStatsMembers": "receive",
        "usersUserInbox": "send",
        "subscribeUsersUserInbox": "receive",
        "unsubscribe": "receive",
    }
    # a reply when the handler returns a model, an ack otherwise
    assert ops["post"]["reply"]["messages"][0] == {"$ref": "#/channels/endpoint/messages/postReply"}
    assert ops["join"]["reply"]["messages"][0] == {"$ref": "#/channels/endpoint/messages/ack"}
    # the frame envelope, with the model under data
    post = document["components"]["messages"]["post"]["payload"]
    assert post["title"] == "PostFrame"
    assert post["properties"]["type"] == {
        "type": "string",
        "const": "post",
        "x-parser-schema-id": "PostFrameType",
    }
    assert post["properties"]["data"] == {"$ref": "#/components/schemas/Post"}
    assert post["required"] == ["type", "data"]
    posted = document["components"]["messages"]["roomsRoomPosted"]["payload"]
    assert posted["properties"]["type"]["const"] == "posted"
    assert posted["required"] == ["type", "topic", "data"]
    # serialization schemas: every field the server emits is required
    assert document["components"]["schemas"]["Posted"]["required"] == ["type", "user", "text", "at"]
    # the chat authenticates with a function nobody can see into: no invented scheme
    assert "securitySchemes" not in document["components"]
    assert "authenticated" in document["channels"]["endpoint"]["description"]


def test_unions_enums_nested_and_constraints() -> None:
    document = build_document(asyncapi_apps.shop)
    schemas = document["components"]["schemas"]
    payment = schemas["PlaceOrder"]["properties"]["payment"]
    assert payment["discriminator"] == "kind"
    assert payment["oneOf"] == [
        {"$ref": "#/components/schemas/Card"},
        {"$ref": "#/components/schemas/Transfer"},
    ]
    assert schemas["Color"]["enum"] == ["red", "green"]
    assert schemas["Item"]["properties"]["quantity"] == {
        "x-parser-schema-id": "ItemQuantity",
        "maximum": 99,
        "minimum": 1,
        "title": "Quantity",
        "type": "integer",
    }
    assert schemas["PlaceOrder"]["properties"]["shipTo"] == {"$ref": "#/components/schemas/Address"}
    dims = schemas["PlaceOrder"]["properties"]["dimensions"]["anyOf"][0]
    # draft-07 tuple form
    assert dims["items"] == [
        {"type": "integer", "x-parser-schema-id": f"PlaceOrderDimensionsOption1Item{i}"}
        for i in (1, 2, 3)
    ]
    assert schemas["Category"]["properties"]["children"]["items"] == {
        "$ref": "#/components/schemas/Category"
    }
    events = document["channels"]["ordersRegion"]
    assert set(events["messages"]) == {"order_placed", "order_shipped"}
    assert events["parameters"]["region"]["enum"] == ["eu", "us"]
    assert document["operations"]["cancelOrder"]["x-deprecated"] is True
    assert document["components"]["messages"]["orderCancel"]["deprecated"] is True
    assert document["channels"]["endpoint"]["address"] == "/ws/{tenant}"
    assert "tenant" in document["channels"]["endpoint"]["parameters"]


def test_security_from_the_dependencies() -> None:
    document = build_document(asyncapi_apps.shop)
    scheme = document["components"]["securitySchemes"]["WebSocketOAuth2PasswordBearer"]
    assert scheme["type"] == "oauth2"
    assert scheme["flows"]["password"]["tokenUrl"] == "https://auth.example.com/token"
    assert scheme["flows"]["password"]["availableScopes"]["orders:write"] == "Place orders"
    assert document["servers"]["default"]["security"] == [
        {"$ref": "#/components/securitySchemes/WebSocketOAuth2PasswordBearer"}
    ]
    place = document["operations"]["orderPlace"]
    assert place["x-asyncws-scopes"] == ["orders:write"]
    assert place["security"][0]["scopes"] == ["orders:write"]
    assert document["operations"]["subscribeOrdersRegion"]["x-asyncws-scopes"] == ["orders:read"]
    assert document["operations"]["publishSupportTicketChat"]["x-asyncws-scopes"] == ["chat"]
    assert "security" not in document["operations"]["cancelOrder"]
    binding = document["channels"]["endpoint"]["bindings"]["ws"]
    assert set(binding["headers"]["properties"]) == {
        "Authorization",
        "Origin",
        "Sec-WebSocket-Protocol",
    }
    assert set(binding["query"]["properties"]) == {"access_token"}

    keyed = build_document(asyncapi_apps.keyed)
    assert keyed["components"]["securitySchemes"]["WebSocketAPIKey"] == {
        "type": "httpApiKey",
        "name": "key",
        "in": "query",
        "description": "Send the credential at the handshake: the `key` query parameter.",
    }


def test_client_publish_topic() -> None:
    document = build_document(asyncapi_apps.shop)
    publish = document["components"]["messages"]["publishSupportTicketChat"]["payload"]
    assert publish["properties"]["data"] == {"$ref": "#/components/schemas/ChatLine"}
    # the model's own example is used
    example = document["components"]["messages"]["publishSupportTicketChat"]["examples"][0]
    assert example["payload"]["data"] == {"text": "Where is my parcel?"}
    assert "publishOrdersRegion" not in document["operations"]


def test_no_reply_and_non_model_reply() -> None:
    document = build_document(asyncapi_apps.keyed)
    hello = document["components"]["messages"]["hello"]["payload"]
    assert "data" not in hello["properties"]
    reply = document["components"]["messages"]["timeReply"]["payload"]
    assert reply["properties"]["data"] == {
        "format": "date-time",
        "type": "string",
        "x-parser-schema-id": "TimeReplyFrameData",
    }


def test_topic_patterns_follow_the_subscription_rules() -> None:
    description = describe(chat.ws)
    for topic_desc, topic in zip(description.topics, chat.ws.topics, strict=True):
        sub = re.compile(subscription_regex(topic_desc))
        concrete = re.compile(topic_regex(topic_desc))
        for candidate in (
            "rooms/lobby",
            "rooms/+",
            "rooms/#",
            "rooms/lobby/#",
            "#",
            "rooms",
            "rooms/a/b",
            "rooms/+/typing",
            "rooms/lobby/typing",
            "rooms/#/typing",
            "users/ann/inbox",
            "users/+/inbox",
            "users/#",
        ):
            try:
                validate_pattern(candidate)
            except InvalidTopicError:
                assert not sub.search(candidate), candidate
                continue
            covered = topic.template.covers(candidate) is not None
            assert bool(sub.search(candidate)) == covered, (topic.address, candidate)
            if "+" not in candidate and "#" not in candidate:  # concrete topics only
                matched = topic.template.match(candidate) is not None
                assert bool(concrete.search(candidate)) == matched, (topic.address, candidate)


class Nothing(BaseModel):
    pass


class Note(BaseModel):
    text: str


def test_key_collisions_are_reported() -> None:
    router = Router()
    router.topic("rooms/{room}", Nothing)
    app = AsyncWS(title="clash")
    app.include_router(router)

    @app.operation("rooms.room")
    async def clash(msg: Nothing) -> None:
        pass

    with pytest.raises(ValueError, match=r"'roomsRoom' is used twice: by operation 'rooms\.room'"):
        build_document(app)


def test_documents_are_deterministic_across_hash_seeds() -> None:
    outputs = []
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        texts = []
        for target in TARGETS.values():
            result = subprocess.run(
                [sys.executable, "-m", "asyncws.cli", "spec", target],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            texts.append(result.stdout)
        outputs.append(texts)
    assert outputs[0] == outputs[1]
    assert outputs[0][0] == document_json(build_document(chat.ws))


def test_yaml_and_json_say_the_same() -> None:
    document = build_document(asyncapi_apps.shop)
    text = document_yaml(document)
    assert "&id" not in text and "*id" not in text  # no YAML aliases
    assert yaml.safe_load(text) == json.loads(document_json(document))


# -- golden files ---------------------------------------------------------------------------


def _golden(path: Path, text: str) -> None:
    if UPDATE:
        path.write_text(text, encoding="utf-8")
        return
    assert path.is_file(), f"{path} is missing: run with ASYNCWS_UPDATE_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{path} is out of date: run with ASYNCWS_UPDATE_GOLDEN=1"


@pytest.mark.parametrize("name", APPS)
def test_golden_documents(name: str) -> None:
    _golden(GOLDEN / f"{name}.asyncapi.json", document_json(build_document(APPS[name])))


def test_committed_chat_spec_is_current() -> None:
    _golden(SPECS / "chat.asyncapi.yaml", document_yaml(build_document(chat.ws)))


# -- examples -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^[a-z0-9-]{1,32}$"},
        {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
        {"type": "string", "pattern": "^(foo|bar)+$", "maxLength": 3},
        {"type": "string", "minLength": 12, "pattern": "^[0-9]+$"},
        {"type": "string", "format": "email"},
        {"type": "string", "format": "uuid"},
        {"type": "integer", "minimum": 5, "maximum": 7},
        {"type": "integer", "exclusiveMinimum": 10, "multipleOf": 3},
        {"type": "number", "exclusiveMaximum": 0},
        {"type": "array", "items": {"type": "boolean"}, "minItems": 2},
        {"type": ["null", "string"]},
        {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 3}]},
        {"type": "object", "properties": {"a": {"const": 1}}, "required": ["a"]},
    ],
)
def test_generated_examples_validate(schema: dict[str, Any]) -> None:
    value = example_for(schema)
    assert value is not MISSING
    assert make_validator(schema, {}).is_valid(value), value


def test_examples_give_up_rather_than_lie() -> None:
    assert string_for({"type": "string", "pattern": "^a$", "minLength": 2}) is MISSING
    assert example_for({"$ref": "#/components/schemas/Nope"}) is MISSING


# -- serving --------------------------------------------------------------------------------


async def _get(app: Any, url: str, **kwargs: Any) -> httpx.Response:
    base = kwargs.pop("base_url", "http://testserver")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base) as c:
        return await c.get(url, **kwargs)


async def test_served_json_and_yaml_use_the_request_host() -> None:
    response = await _get(chat.app, "/asyncapi.json", base_url="https://chat.example.com")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    document = response.json()
    assert document["servers"] == {"default": {"host": "chat.example.com", "protocol": "wss"}}
    expected = build_document(chat.ws, server_url="wss://chat.example.com")
    assert document == expected

    response = await _get(chat.app, "/asyncapi.yaml", base_url="http://localhost:9000")
    assert response.headers["content-type"] == "application/yaml"
    assert yaml.safe_load(response.text)["servers"]["default"] == {
        "host": "localhost:9000",
        "protocol": "ws",
    }


async def test_forwarded_proto_is_not_trusted_and_bad_hosts_are_dropped() -> None:
    response = await _get(chat.app, "/asyncapi.json", headers={"x-forwarded-proto": "https"})
    assert response.json()["servers"]["default"]["protocol"] == "ws"
    response = await _get(chat.app, "/asyncapi.json", headers={"host": 'evil"<x>'})
    assert response.json()["servers"]["default"]["host"] == "localhost"


async def test_served_under_a_prefix_keeps_security() -> None:
    response = await _get(asyncapi_apps.shop_app, "/api/asyncapi.json")
    server = response.json()["servers"]["default"]
    assert server["host"] == "testserver"
    assert server["pathname"] == "/api"
    assert server["security"] == [
        {"$ref": "#/components/securitySchemes/WebSocketOAuth2PasswordBearer"}
    ]


async def test_relative_token_urls_are_made_absolute_on_the_serving_host() -> None:
    # FastAPI's tokenUrl="/token" is relative; AsyncAPI wants a URI (the official parser says
    # so): resolved against the default server, and against the request's host when served.
    scheme = build_document(jwt_example.ws)["components"]["securitySchemes"]
    flows = next(iter(scheme.values()))["flows"]
    assert flows["password"]["tokenUrl"] == "http://localhost:8000/token"
    response = await _get(jwt_example.app, "/asyncapi.json", headers={"host": "api.test:9000"})
    served = response.json()["components"]["securitySchemes"]
    assert next(iter(served.values()))["flows"]["password"]["tokenUrl"] == (
        "http://api.test:9000/token"
    )


async def test_docs_route_serves_html() -> None:
    response = await _get(chat.app, "/asyncapi")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")


async def test_disabled_routes_and_caching() -> None:
    ws = AsyncWS(title="Notes", asyncapi_url=None, docs_url=None)

    @ws.operation("note")
    async def note(msg: Note) -> None:
        pass

    app = FastAPI()
    app.include_router(ws.asgi_router)
    assert (await _get(app, "/asyncapi.json")).status_code == 404
    assert (await _get(app, "/asyncapi")).status_code == 404
    first = (await _get(app, "/asyncapi.yaml")).text
    assert (await _get(app, "/asyncapi.yaml")).text == first

    from asyncws.asyncapi import _cached

    assert _cached(ws) is _cached(ws)  # generated once

    @ws.operation("later")
    async def later(msg: Note) -> None:
        pass

    assert "later" in yaml.safe_load((await _get(app, "/asyncapi.yaml")).text)["operations"]
