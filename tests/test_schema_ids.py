"""Every schema of the documents asyncws writes has a stable id of its own.

The official parser (``@asyncapi/parser``) gives a schema without one the id
``<anonymous-schema-N>``, numbered in document order: Modelina names its model
``AnonymousSchema_N``, the renderers show it, and one added field renumbers every later
schema in ``asyncapi diff``. asyncws names each schema after its place
(``x-parser-schema-id``, and a ``title`` for object schemas); these tests read the ids the
parser reports (``node scripts/schema_ids.mjs``) and check they do not move.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import create_model

from asyncws import AsyncWS
from asyncws.asyncapi import build_document, document_json
from asyncws.asyncapi.schemas import SCHEMA_ID, name_schema
from tests.browser import unavailable
from tests.servers import REPO_ROOT

GOLDEN = REPO_ROOT / "tests" / "golden"


def _schema_ids(files: list[Path]) -> dict[str, dict[str, Any]]:
    node = shutil.which("node")
    if node is None or not (REPO_ROOT / "node_modules" / "@asyncapi" / "parser").is_dir():
        unavailable("node and node_modules/@asyncapi/parser are needed (npm ci)")
    assert node is not None
    result = subprocess.run(
        [node, "scripts/schema_ids.mjs", *map(str, files)],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return {entry["file"]: entry for entry in json.loads(result.stdout)["files"]}


def test_no_schema_of_a_written_document_is_anonymous(tmp_path: Path) -> None:
    from tests.apps import framed

    framed_doc = tmp_path / "framed.asyncapi.json"
    framed_doc.write_text(document_json(build_document(framed.coded)), encoding="utf-8")
    files = [*sorted(GOLDEN.glob("*.json")), REPO_ROOT / "specs" / "chat.asyncapi.yaml", framed_doc]
    results = _schema_ids(files)
    assert len(results) == len(files) >= 7
    for path in files:
        entry = results[str(path)]
        assert entry["parsed"], path
        assert len(entry["schemas"]) > 10, path
        anonymous = [s for s in entry["schemas"] if "anonymous" in str(s["id"])]
        assert anonymous == [], (path, anonymous)
        # v3.0 channel parameters carry no schema: the parser makes one per use, id-less
        id_less = [s["pointer"] for s in entry["schemas"] if s["id"] is None]
        assert all("/parameters/" in str(p) for p in id_less), (path, id_less)


def test_object_schemas_are_titled_after_their_place() -> None:
    from examples.chat.app import ws as chat_app

    document = build_document(chat_app)
    messages = document["components"]["messages"]
    assert messages["post"]["payload"]["title"] == "PostFrame"
    assert messages["ack"]["payload"]["title"] == "AckFrame"
    assert messages["error"]["payload"]["title"] == "ErrorFrame"
    assert messages["unsubscribe"]["payload"]["title"] == "UnsubscribeFrame"
    assert messages["subscribeRoomsRoom"]["payload"]["title"] == "SubscribeRoomsRoomFrame"
    assert messages["postReply"]["payload"]["properties"]["type"][SCHEMA_ID] == (
        "PostReplyFrameType"
    )
    schemas = document["components"]["schemas"]
    assert schemas["AsyncwsErrorDetail"]["properties"]["loc"]["items"][SCHEMA_ID] == (
        "AsyncwsErrorDetailLocItem"
    )


def test_inline_objects_members_and_items_are_named() -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "error": {
                "type": "object",
                "properties": {"errors": {"type": "array", "items": {"type": "object"}}},
            },
            "either": {"anyOf": [{"type": "object"}, {"$ref": "#/components/schemas/X"}]},
            "kept": {"type": "object", "title": "Mine", SCHEMA_ID: "Mine"},
        },
    }
    name_schema(schema, "ErrorFrame")
    props = schema["properties"]
    assert props["error"]["title"] == "ErrorFrameError"
    assert props["error"]["properties"]["errors"]["items"]["title"] == "ErrorFrameErrorErrorsItem"
    assert props["either"]["anyOf"][0][SCHEMA_ID] == "ErrorFrameEitherOption1"
    assert props["either"]["anyOf"][1] == {"$ref": "#/components/schemas/X"}
    assert props["kept"] == {"type": "object", "title": "Mine", SCHEMA_ID: "Mine"}


def _ids(obj: Any, path: str = "") -> dict[str, str]:
    """Every ``x-parser-schema-id`` of a document, by the JSON path of its schema."""
    found: dict[str, str] = {}
    if isinstance(obj, dict):
        if SCHEMA_ID in obj:
            found[path] = obj[SCHEMA_ID]
        for key, value in obj.items():
            found.update(_ids(value, f"{path}/{key}"))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found.update(_ids(value, f"{path}/{i}"))
    return found


def _flat(obj: Any, path: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        return {
            k: v for key, value in obj.items() for k, v in _flat(value, f"{path}/{key}").items()
        }
    if isinstance(obj, list):
        return {k: v for i, value in enumerate(obj) for k, v in _flat(value, f"{path}/{i}").items()}
    return {path: obj}


def _app(extra_field: bool, reverse: bool) -> AsyncWS:
    fields: dict[str, Any] = {"text": (str, ...), "tags": (list[str], [])}
    if extra_field:
        fields["pinned"] = (bool, False)
    note_model = create_model("Note", **fields)
    memo_model = create_model("Memo", text=(str, ...))
    ws = AsyncWS(title="ids")

    def note(payload: Any) -> None:
        del payload

    def memo(payload: Any) -> None:
        del payload

    note.__annotations__ = {"payload": note_model, "return": None}
    memo.__annotations__ = {"payload": memo_model, "return": None}
    handlers = [("note", note), ("memo", memo)]
    for name, handler in reversed(handlers) if reverse else handlers:
        ws.operation(name)(handler)
    return ws


def test_ids_do_not_depend_on_declaration_order() -> None:
    first = _ids(build_document(_app(False, reverse=False)))
    second = _ids(build_document(_app(False, reverse=True)))
    # the same schema (same place) has the same id, whatever was declared before it
    by_id_first = {v: k.split("/")[-1] for k, v in first.items()}
    by_id_second = {v: k.split("/")[-1] for k, v in second.items()}
    assert by_id_first == by_id_second
    assert len(set(first.values())) == len(first)  # and no two schemas share an id


def test_a_one_field_change_only_touches_that_field() -> None:
    before = _flat(build_document(_app(False, reverse=False)))
    after = _flat(build_document(_app(True, reverse=False)))
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed, "the field should show"
    outside = [
        k
        for k in changed
        if not k.startswith("/components/schemas/Note/")
        and "/examples/" not in k  # the message example shows the new field's value
    ]
    assert outside == []
    assert all("pinned" in k or "/required/" in k or "/examples/" in k for k in changed), changed


@pytest.mark.parametrize("name", ["chat", "shop"])
def test_golden_ids_are_unique_per_document(name: str) -> None:
    document = json.loads((GOLDEN / f"{name}.asyncapi.json").read_text(encoding="utf-8"))
    ids = list(_ids(copy.deepcopy(document)).values())
    assert len(ids) == len(set(ids))


def test_the_endpoint_description_is_not_repeated_in_operations() -> None:
    from tests.apps import framed

    documents = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(GOLDEN.glob("*.json"))]
    documents.append(build_document(framed.coded))
    for document in documents:
        endpoint = document["channels"]["endpoint"].get("description", "")
        info = document["info"].get("description", "")
        for key, operation in document["operations"].items():
            text = operation.get("description", "")
            assert not (endpoint and endpoint in text), key
            assert not (info and info in text), key
