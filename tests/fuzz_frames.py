"""Frames for fuzzing the wire protocol, and the harness that checks what the server does.

Two things live here, used by ``tests/test_fuzz.py`` (short runs) and ``benchmarks/fuzz.py``
(long runs, and the same corpus over a real network):

* **Hypothesis strategies** for client frames: valid frames of the chat example (built from
  its pydantic models), valid subscriptions (concrete and wildcard), and hostile frames of
  every kind we could think of (see `hostile_frames`). Each frame carries a ``case`` label so
  a run can say what it sent and what came back.
* **`corpus()`**: one deterministic instance of every hostile case, with the answer the
  declarative endpoint (the chat app) and the seed-protocol endpoint must give (`run_corpus`
  sends them). The suite checks these exact answers; ``docs/hostile-input.md`` is the table.
* **`run_scenario`**: several in-memory clients on one app at once -- a *victim* subscribed
  to a room, a *bystander* posting to it after every step, and 1-3 *attackers* sending the
  drawn frames -- and the invariants checked on everything the server sends (`Checker`).

Every wait has a timeout and every loop a bound; nothing here touches the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from asyncws import ErrorCode, WebSocketManager
from asyncws.routing import message_name
from asyncws.testing import TestClient, WebSocketClosed, WebSocketDenied, WebSocketSession

__all__ = [
    "CHAT_BASE",
    "SEED_BASE",
    "Case",
    "CaseResult",
    "Checker",
    "Frame",
    "FuzzViolation",
    "Tally",
    "Target",
    "chat_frames",
    "chat_target",
    "corpus",
    "hostile_frames",
    "outcome_name",
    "run_case",
    "run_corpus",
    "run_scenario",
    "seed_frames",
    "seed_target",
    "steps",
    "strict_loads",
    "texts",
]

MAX_FRAME_SIZE = 1 << 20  # the default of AsyncWS / WebSocketManager
#: What an attacker may be closed with: sustained abuse, or a frame over the size limit.
ATTACKER_CLOSE_CODES = frozenset({1008, 1009})
DELIVERY_TIMEOUT = 5.0  # seconds for the victim to get the bystander's post
DRAIN_TIMEOUT = 0.002  # seconds of silence that end a non-blocking drain


# -- frames -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One client message (``str``: a text frame, ``bytes``: a binary frame), or a burst of
    them sent back to back (floods), labelled with the hostile case it belongs to."""

    case: str
    payloads: tuple[str | bytes, ...]
    pace: float = 0.0  # seconds between frames after the first `burst` (floods that must
    burst: int = 0  # stay under the rate limit, e.g. a subscription flood)

    def __repr__(self) -> str:  # hypothesis prints failing examples: keep 1 MiB frames short
        first = self.payloads[0] if self.payloads else ""
        head = first[:100]
        more = f" +{len(self.payloads) - 1} more" if len(self.payloads) > 1 else ""
        return f"Frame({self.case!r}, {len(first)} chars: {head!r}{more})"


def one(case: str, payload: str | bytes) -> Frame:
    return Frame(case, (payload,))


def dump(obj: Any, *, ascii: bool = True) -> str:
    """JSON text as a client would send it (lone surrogates become ``\\ud800`` escapes)."""
    return json.dumps(obj, ensure_ascii=ascii)


# -- building blocks ----------------------------------------------------------------------------

#: Strings that must travel as data, never be interpreted (SQL, HTML, templates, JSON, ...).
INJECTIONS = (
    "'; DROP TABLE users; --",
    "1 OR 1=1",
    "<script>alert(document.cookie)</script>",
    '<img src=x onerror="alert(1)">',
    "{{7*7}}${7*7}<%= 7*7 %>",
    "${jndi:ldap://127.0.0.1/a}",
    '"},{"type":"ack","id":1}',
    "\\u0000\\ud800",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "\u202eevil\u202c",
    "a\x00b\x1b[31mred",
    "\ufeffbom",
    "🙂" * 10,
    "Traceback (most recent call last):",
    "__proto__",
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)

#: Texts for posts: anything printable or not (no lone surrogates: those are not text), and
#: the injection strings above.
texts = st.one_of(st.text(min_size=1, max_size=60), st.sampled_from(INJECTIONS))
ids = st.one_of(st.none(), st.integers(-(2**53), 2**53), st.text(max_size=64))
rooms = st.one_of(
    st.sampled_from(["lobby", "dev", "r-1"]), st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True)
)
user_names = st.from_regex(r"[A-Za-z0-9_-]{1,32}", fullmatch=True)

#: Values of the wrong type for any envelope field (``type``, ``id``, ``topic``, ``data``).
WRONG_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    1e308,
    2**64,
    "",
    "x",
    [],
    [1, "a"],
    {},
    {"a": {"b": [None]}},
)
#: Topics that are invalid, undeclared, forbidden or just odd (subscribe, unsubscribe,
#: publish and the seed's send all get them).
HOSTILE_TOPICS: tuple[str, ...] = (
    "",
    "/",
    "//",
    "+",
    "#",
    "++",
    "+#",
    "#/+",
    "#/#",
    "rooms/#/x",
    "rooms/a+",
    "rooms/+a",
    "rooms/lo#bby",
    "rooms/+/+/+",
    "rooms/lobby/",
    "rooms/lobby\x00",
    "rooms/\x1b[31m",
    "rooms/\x7f",
    "rooms/\u202elobby",
    "rooms/лобби",
    "rooms/🙂",
    "rooms/ lobby",
    "ROOMS/LOBBY",
    "rooms/../users/victim/inbox",
    "rooms/%2F",
    "rooms/\\",
    "rooms/\ud800",
    "users/victim/inbox",
    "users/+/inbox",
    "users/#",
    "$SYS/#",
    "rooms/" + "a" * 300,
    "a/" * 10_000,
    "+/" * 10_000 + "#",
    "/" * 5_000,
)
topic_noise = st.text(alphabet="ab/+#\x00 é$\ud800", max_size=24)
hostile_topics = st.one_of(st.sampled_from(HOSTILE_TOPICS), topic_noise)

#: Frames a server sends, sent by a client (they must be unknown types to the server).
SERVER_LOOKALIKES: tuple[dict[str, Any], ...] = (
    {"type": "ack", "id": 1},
    {"type": "reply", "id": 1, "data": {"room": "lobby", "at": "2026-01-01T00:00:00Z"}},
    {"type": "error", "id": 1, "code": "internal_error", "message": "x"},
    {
        "type": "posted",
        "topic": "rooms/lobby",
        "data": {"type": "posted", "user": "admin", "text": "fake", "at": "2026-01-01T00:00:00Z"},
    },
    {"type": "joined", "topic": "rooms/lobby", "data": {"type": "joined", "user": "admin"}},
    {"type": "Typing", "topic": "rooms/lobby/typing", "data": {"user": "admin"}},
    {
        "type": "DirectMessage",
        "topic": "users/victim/inbox",
        "data": {"from": "admin", "text": "x", "at": "2026-01-01T00:00:00Z"},
    },
    {"type": "set_conn_id", "conn_id": "victim"},
)
#: Type names that mean something to JavaScript or Python objects.
MAGIC_TYPES = (
    "__proto__",
    "constructor",
    "prototype",
    "toString",
    "hasOwnProperty",
    "__class__",
    "__init__",
    "__dict__",
    "__getattr__",
    "handle_frame",
    "_call",
    "None",
    "null",
    "POST",
    "post ",
    " post",
    "post\x00",
)


@functools.cache
def _big_digits() -> str:
    return "1" + "0" * 999_999  # a 10^6-digit integer (the frame stays under 1 MiB)


@functools.cache
def _deep_arrays() -> str:
    return "[" * 100_000 + "]" * 100_000


@functools.cache
def _deep_objects() -> str:
    return '{"a":' * 50_000 + "1" + "}" * 50_000


def _deep_arrays_900() -> str:  # deep enough for a serializer, not for Python's json module
    return "[" * 900 + "]" * 900


def _with_raw(frame: dict[str, Any], key: str, raw_json: str) -> str:
    """``frame`` as JSON with ``key`` set to a raw JSON fragment (not valid Python data)."""
    text = dump({k: v for k, v in frame.items() if k != key})
    return text[:-1] + ("," if len(text) > 2 else "") + dump(key) + ":" + raw_json + "}"


# -- hostile frames (shared by both dialects) ---------------------------------------------------


def hostile_frames(
    valid: st.SearchStrategy[Frame],
    *,
    base: dict[str, Any],
    operations: Sequence[str],
    max_frame_size: int = MAX_FRAME_SIZE,
) -> st.SearchStrategy[Frame]:
    """Every kind of hostile frame. ``valid`` gives frames to mangle (truncate, wrap, ...);
    ``base`` is a valid frame to build field-level abuse on; ``operations`` are the client
    frame types of the dialect (their ``data`` gets every wrong type)."""

    def from_valid(case: str, f: Callable[[str], str]) -> st.SearchStrategy[Frame]:
        return valid.map(
            lambda fr: one(
                case, f(fr.payloads[0] if isinstance(fr.payloads[0], str) else '{"type":1}')
            )
        )

    truncated = st.tuples(valid, st.floats(0, 1, exclude_max=True)).map(
        lambda t: one(
            "invalid_json/truncated",
            str(t[0].payloads[0])[: int(len(str(t[0].payloads[0])) * t[1])],
        )
    )
    constants = st.tuples(
        st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999999", "-1e999999"]),
        st.sampled_from(["id", "data", "type", "topic", "extra"]),
    ).map(lambda t: one(f"json/{t[0].lstrip('-')}-in-{t[1]}", _with_raw(base, t[1], t[0])))
    big_numbers = st.sampled_from(["id", "data", "extra"]).map(
        lambda key: one(f"json/10^6-digit-int-in-{key}", _with_raw(base, key, _big_digits()))
    )
    surrogates = st.tuples(
        st.sampled_from(["\ud800", "\udfff", "x\ud83d", "\udc00\ud800"]),
        st.sampled_from(["type", "id", "topic", "data", "key"]),
    ).map(
        lambda t: one(
            f"json/lone-surrogate-in-{t[1]}",
            dump({**base, t[0]: 1})
            if t[1] == "key"
            else dump({**base, t[1]: t[0] if t[1] != "data" else {"text": t[0]}}),
        )
    )
    deep = st.sampled_from(
        [
            ("json/deep-arrays-100k", _deep_arrays),
            ("json/deep-objects-50k", _deep_objects),
            ("json/deep-arrays-900", _deep_arrays_900),
        ]
    ).flatmap(
        lambda c: st.sampled_from(
            [one(c[0], c[1]()), one(c[0] + "-in-data", _with_raw(base, "data", c[1]()))]
        )
    )
    garbage = st.one_of(
        from_valid("invalid_json/trailing-garbage", lambda t: t + "x"),
        from_valid("invalid_json/two-objects", lambda t: t + t),
        from_valid("invalid_json/bom", lambda t: "\ufeff" + t),
        from_valid("invalid_json/nul-after", lambda t: t + "\x00"),
        from_valid("invalid_json/single-quotes", lambda t: t.replace('"', "'")),
        st.sampled_from(["", " ", "\n", "{", "}", "nul", "{'type': 'ping'}", "\x00"]).map(
            lambda t: one("invalid_json/garbage", t)
        ),
        st.text(max_size=30).map(lambda t: one("invalid_json/random-text", t)),
    )
    not_objects = st.sampled_from(
        [
            "[]",
            "[" + dump(base) + "]",
            '"' + str(base.get("type")) + '"',
            "42",
            "null",
            "true",
            '""',
        ]
    ).map(lambda t: one("frame/not-an-object", t))
    binary = st.one_of(
        st.binary(max_size=40).map(lambda b: one("frame/binary", b)),
        valid.map(
            lambda fr: one(
                "frame/binary-valid-json",
                fr.payloads[0].encode() if isinstance(fr.payloads[0], str) else fr.payloads[0],
            )
        ),
    )
    wrong_types = st.tuples(
        st.sampled_from(["type", "id", "topic", "data", "conn_id"]), st.sampled_from(WRONG_VALUES)
    ).map(lambda t: one(f"frame/wrong-type-{t[0]}", dump({**base, t[0]: t[1]})))
    missing = st.sampled_from(sorted(base)).map(
        lambda k: one(f"frame/missing-{k}", dump({key: v for key, v in base.items() if key != k}))
    )
    huge_ids = st.sampled_from(
        [2**53 + 1, -(2**53) - 1, 10**30, "x" * 65, "x" * 10_000, 1.0, -0.0, [1], {"id": 1}]
    ).map(lambda v: one("frame/bad-id", dump({**base, "id": v})))
    long_types = st.sampled_from([100_000, 1_000_000]).map(
        lambda n: one(f"frame/type-{n}-chars", dump({**base, "type": "x" * n}))
    )
    magic = st.sampled_from(MAGIC_TYPES).map(lambda t: one("frame/magic-type", dump({"type": t})))
    proto = st.sampled_from(
        [
            {"__proto__": {"type": base.get("type")}, "id": 1},
            {**base, "__proto__": {"isAdmin": True}, "constructor": {"prototype": {"x": 1}}},
            {**base, "data": {"__proto__": {"user": "admin"}, "constructor": {"name": "x"}}},
            {**base, "__class__": "Admin", "__dict__": {"user_id": "admin"}},
        ]
    ).map(lambda obj: one("frame/prototype-pollution", dump(obj)))
    extra = st.tuples(valid, st.dictionaries(st.text(max_size=10), json_values, max_size=5)).map(
        lambda t: one("frame/extra-fields", _merge(t[0], t[1]))
    )
    wrong_data = st.tuples(st.sampled_from(list(operations)), st.sampled_from(WRONG_VALUES)).map(
        lambda t: one(f"data/wrong-type-{t[0]}", dump({"type": t[0], "id": 1, "data": t[1]}))
    )
    random_data = st.tuples(st.sampled_from(list(operations)), json_values).map(
        lambda t: one(f"data/random-{t[0]}", dump({"type": t[0], "id": 1, "data": t[1]}))
    )
    oversized = st.sampled_from([max_frame_size + 1, max_frame_size + 1000]).map(
        lambda n: one("frame/over-max-size", _padded(base, n))
    )
    duplicates = st.sampled_from(
        [
            '{"type":"unknown-op","type":' + dump(base.get("type")) + ',"id":1}',
            '{"type":' + dump(base.get("type")) + ',"type":"unknown-op","id":1}',
            dump(base)[:-1] + ',"id":1,"id":"dup"}',
            dump(base)[:-1] + ',"topic":"rooms/lobby","topic":"users/victim/inbox"}',
        ]
    ).map(lambda t: one("frame/duplicate-keys", t))
    lookalikes = st.sampled_from(SERVER_LOOKALIKES).map(
        lambda obj: one(f"frame/server-{obj['type']}", dump(obj))
    )
    bad_flood = st.sampled_from(["nope", "[]", '{"type":5}', "\ufeff{}"]).map(
        lambda t: Frame("flood/invalid", (t,) * 25)
    )
    topics = st.tuples(
        st.sampled_from(["subscribe", "unsubscribe", "publish"]), hostile_topics
    ).map(lambda t: one(f"topic/{t[0]}-hostile", dump({"type": t[0], "id": 1, "topic": t[1]})))
    return st.one_of(
        truncated,
        constants,
        big_numbers,
        surrogates,
        deep,
        garbage,
        not_objects,
        binary,
        wrong_types,
        missing,
        huge_ids,
        long_types,
        magic,
        proto,
        extra,
        wrong_data,
        random_data,
        oversized,
        duplicates,
        lookalikes,
        topics,
        bad_flood,
    )


def _merge(frame: Frame, extra: dict[str, Any]) -> str:
    payload = frame.payloads[0]
    try:
        obj = json.loads(payload)
    except ValueError:
        return payload if isinstance(payload, str) else payload.decode(errors="replace")
    if isinstance(obj, dict):
        obj = {**extra, **obj}  # the frame's own fields win: only *extra* fields are added
    return dump(obj)


def _padded(base: dict[str, Any], size: int) -> str:
    text = dump({**base, "pad": ""})
    return text[:-2] + "x" * (size - len(text) + 2) + '"}'


# -- the chat example (declarative protocol) ----------------------------------------------------


def _chat_op(op: str, data: Any, frame_id: Any, ascii: bool) -> Frame:
    obj: dict[str, Any] = {"type": op}
    if frame_id is not None:
        obj["id"] = frame_id
    if data is not None:
        obj["data"] = data
    return one(f"valid/{op}", dump(obj, ascii=ascii))


def _chat_valid() -> st.SearchStrategy[Frame]:
    from examples.chat.app import Direct, Post, TypingIn

    posts = st.builds(Post, room=rooms, text=texts).map(lambda m: m.model_dump(mode="json"))
    directs = st.builds(Direct, to=user_names | st.just("victim"), text=texts).map(
        lambda m: m.model_dump(mode="json")
    )
    typing_in = st.builds(TypingIn, room=rooms).map(lambda m: m.model_dump(mode="json"))
    operations = st.one_of(
        st.tuples(st.just("post"), posts),
        st.tuples(st.just("direct"), directs),
        st.tuples(st.sampled_from(["join", "typing"]), typing_in),
        st.tuples(st.just("whoami"), st.none()),
    )
    ops = st.tuples(operations, ids, st.booleans()).map(
        lambda t: _chat_op(t[0][0], t[0][1], t[1], t[2])
    )
    patterns = st.one_of(
        rooms.map(lambda r: f"rooms/{r}"),
        rooms.map(lambda r: f"rooms/{r}/typing"),
        st.sampled_from(["rooms/+", "rooms/#", "rooms/+/typing", "rooms/+/#", "users/eve0/inbox"]),
    )
    subs = st.tuples(st.sampled_from(["subscribe", "unsubscribe"]), patterns, ids).map(
        lambda t: one(
            f"valid/{t[0]}{'-wildcard' if '+' in t[1] or '#' in t[1] else ''}",
            dump({"type": t[0], "topic": t[1], **({"id": t[2]} if t[2] is not None else {})}),
        )
    )
    return st.one_of(ops, subs)


def _chat_specific() -> st.SearchStrategy[Frame]:
    now = datetime.now(UTC).isoformat()
    publishes = st.sampled_from(
        [
            ("rooms/lobby", {"type": "posted", "user": "bystander", "text": "spoof", "at": now}),
            ("rooms/lobby/typing", {"user": "bystander"}),
            ("users/victim/inbox", {"from": "bystander", "text": "spoof", "at": now}),
            ("rooms/+", {"type": "joined", "user": "x"}),
            ("nowhere", {}),
        ]
    ).map(
        lambda t: one(
            "publish/not-allowed", dump({"type": "publish", "id": 1, "topic": t[0], "data": t[1]})
        )
    )
    injections = st.sampled_from(INJECTIONS).map(
        lambda s: one(
            "data/injection-text",
            dump({"type": "post", "id": 1, "data": {"room": "lobby", "text": s}}),
        )
    )
    floods = st.sampled_from(
        [
            Frame(
                "flood/subscriptions",
                tuple(
                    dump({"type": "subscribe", "id": i, "topic": f"rooms/flood-{i}"})
                    for i in range(110)
                ),
            ),
            Frame("flood/rate", tuple(dump({"type": "whoami"}) for _ in range(130))),
            Frame(
                "flood/posts",
                tuple(
                    dump({"type": "post", "data": {"room": "lobby", "text": f"spam {i}"}})
                    for i in range(60)
                ),
            ),
        ]
    )
    return st.one_of(publishes, injections, floods)


def chat_frames() -> st.SearchStrategy[Frame]:
    """Frames an attacker sends to the chat app: valid ones (half the time) and hostile ones."""
    valid = _chat_valid()
    base = {"type": "post", "id": 1, "data": {"room": "lobby", "text": "hi"}}
    hostile = hostile_frames(
        valid, base=base, operations=["post", "direct", "join", "typing", "whoami"]
    )
    return st.one_of(valid, hostile, _chat_specific())


# -- the seed protocol ------------------------------------------------------------------------


def _seed_valid() -> st.SearchStrategy[Frame]:
    topics = st.one_of(
        st.sampled_from(["chat/lobby", "chat/dev", "news"]),
        st.from_regex(r"[a-z]{1,8}(/[a-z]{1,8}){0,3}", fullmatch=True),
    )
    patterns = st.one_of(topics, st.sampled_from(["chat/+", "chat/#", "#", "+/+"]))
    fields = st.dictionaries(
        st.text(max_size=8).filter(lambda k: k not in ("type", "topic", "conn_id")),
        json_values,
        max_size=4,
    )
    subs = st.tuples(st.sampled_from(["subscribe", "unsubscribe"]), patterns, ids).map(
        lambda t: one(
            f"valid/seed-{t[0]}",
            dump({"type": t[0], "topic": t[1], **({"id": t[2]} if t[2] is not None else {})}),
        )
    )
    sends = st.tuples(topics, fields, st.booleans()).map(
        lambda t: one("valid/seed-send", dump({"type": "send", "topic": t[0], **t[1]}, ascii=t[2]))
    )
    broadcasts = fields.map(lambda f: one("valid/seed-broadcast", dump({"type": "broadcast", **f})))
    direct = st.tuples(
        st.one_of(
            st.sampled_from(["victim", "bystander", "nobody"]),
            st.lists(st.sampled_from(["victim", "x"]), min_size=1, max_size=3),
        ),
        fields,
    ).map(
        lambda t: one(
            "valid/seed-send_by_conn_id", dump({"type": "send_by_conn_id", "conn_id": t[0], **t[1]})
        )
    )
    connect = st.just(one("valid/seed-connect", dump({"type": "connect"})))
    return st.one_of(subs, sends, broadcasts, direct, connect)


def _seed_specific() -> st.SearchStrategy[Frame]:
    forwarded = st.sampled_from(
        [
            ("seed/nan-forwarded", _with_raw({"type": "send", "topic": "chat/lobby"}, "x", "NaN")),
            (
                "seed/infinity-forwarded",
                _with_raw({"type": "broadcast"}, "x", "-Infinity"),
            ),
            (
                "seed/1e999999-forwarded",
                _with_raw({"type": "send", "topic": "chat/lobby"}, "x", "1e999999"),
            ),
            (
                "seed/deep-900-forwarded",
                _with_raw({"type": "send", "topic": "chat/lobby"}, "x", _deep_arrays_900()),
            ),
            (
                "seed/4300-digit-int-forwarded",
                _with_raw({"type": "send", "topic": "chat/lobby"}, "x", "9" * 4300),
            ),
            (
                "seed/surrogate-forwarded",
                dump({"type": "send", "topic": "chat/lobby", "x": "\ud800"}),
            ),
            ("seed/surrogate-key-forwarded", dump({"type": "broadcast", "\udfff": 1})),
            ("seed/surrogate-conn_id", dump({"type": "send_by_conn_id", "conn_id": "\ud800"})),
            (
                "seed/surrogate-conn_id-list",
                dump({"type": "send_by_conn_id", "conn_id": ["victim", "a\udc00"]}),
            ),
            ("seed/conn_id-1001", dump({"type": "send_by_conn_id", "conn_id": ["x"] * 1001})),
            ("seed/conn_id-empty-list", dump({"type": "send_by_conn_id", "conn_id": []})),
            ("seed/conn_id-missing", dump({"type": "send_by_conn_id", "x": 1})),
            ("seed/conn_id-odd", dump({"type": "send_by_conn_id", "conn_id": "a/b+#%2F\x00"})),
            ("seed/send-no-topic", dump({"type": "send", "x": 1})),
            ("seed/send-to-pattern", dump({"type": "send", "topic": "chat/+", "x": 1})),
            ("seed/subscribe-everything", dump({"type": "subscribe", "topic": "#", "id": 1})),
        ]
    ).map(lambda t: one(t[0], t[1]))
    injections = st.sampled_from(INJECTIONS).map(
        lambda s: one(
            "data/injection-text", dump({"type": "send", "topic": "chat/lobby", "text": s})
        )
    )
    floods = st.sampled_from(
        [
            Frame(
                "flood/subscriptions",
                tuple(
                    dump({"type": "subscribe", "id": i, "topic": f"flood/{i}"}) for i in range(260)
                ),
            ),
            Frame(
                "flood/broadcasts",
                tuple(dump({"type": "broadcast", "n": i}) for i in range(130)),
            ),
        ]
    )
    return st.one_of(forwarded, injections, floods)


def seed_frames() -> st.SearchStrategy[Frame]:
    """Frames an attacker sends to a seed-protocol endpoint (`WebSocketManager.receive`)."""
    valid = _seed_valid()
    base = {"type": "send", "topic": "chat/lobby", "text": "hi"}
    hostile = hostile_frames(
        valid,
        base=base,
        operations=["send", "broadcast", "send_by_conn_id", "subscribe", "connect"],
    )
    return st.one_of(valid, hostile, _seed_specific())


def steps(frames: st.SearchStrategy[Frame], max_steps: int = 10) -> st.SearchStrategy[Any]:
    """A scenario: steps of 1-3 (attacker index, frame) sent at once, and the text the
    bystander posts after each step."""
    actions = st.lists(st.tuples(st.integers(0, 2), frames), min_size=1, max_size=3)
    return st.lists(st.tuples(actions, texts), min_size=1, max_size=max_steps)


# -- targets: an app, its clients and what a delivery looks like ---------------------------------


@dataclass
class Target:
    """One endpoint to fuzz: how each role connects, how the bystander posts, how a post is
    recognised when it arrives, and which frame types the server may send."""

    name: str
    app: Any
    manager: WebSocketManager
    victim_url: str
    bystander_url: str
    attacker_url: Callable[[str], str]  # a unique suffix -> the url of a new attacker
    victim_patterns: tuple[str, ...]
    post: Callable[[str, str], dict[str, Any]]  # (marker, text) -> the bystander's frame
    post_key: Callable[[dict[str, Any]], str | None]  # a frame -> the key of a bystander post
    answers_post: bool  # the bystander gets a reply (declarative) or nothing (seed "send")
    known_types: frozenset[str]
    forwards_payloads: bool  # seed: frames without "type" are other clients' payloads
    probe: str  # a frame with id "probe" that an open connection always answers
    probe_answer: str  # the type of that answer


def _chat_target() -> Target:
    from examples.chat.app import app, ws

    events = {message_name(m) for topic in ws.topics for m in topic.models}

    def post_key(f: dict[str, Any]) -> str | None:
        data = f.get("data")
        if (
            f.get("type") == "posted"
            and f.get("topic") == "rooms/lobby"
            and isinstance(data, dict)
            and data.get("user") == "bystander"
        ):
            return str(data.get("text"))
        return None

    return Target(
        name="chat",
        app=app,
        manager=ws.manager,
        victim_url="/ws?user=victim",
        bystander_url="/ws?user=bystander",
        attacker_url=lambda suffix: f"/ws?user=eve{suffix[:1]}",
        victim_patterns=("rooms/lobby", "rooms/+"),
        post=lambda marker, text: {
            "type": "post",
            "id": marker,
            "data": {"room": "lobby", "text": text},
        },
        post_key=post_key,
        answers_post=True,
        known_types=frozenset({"ack", "reply", "error", "set_conn_id", *events}),
        forwards_payloads=False,
        probe=dump({"type": "whoami", "id": "probe"}),
        probe_answer="reply",
    )


def _seed_target() -> Target:
    from tests.apps.seed_app import app, manager

    def post_key(f: dict[str, Any]) -> str | None:
        return str(f.get("marker")) if f.get("from") == "bystander" else None

    return Target(
        name="seed",
        app=app,
        manager=manager,
        victim_url="/ws/victim",
        bystander_url="/ws/bystander",
        attacker_url=lambda suffix: f"/ws/eve-{suffix}",
        victim_patterns=("chat/lobby", "chat/+"),
        post=lambda marker, text: {
            "type": "send",
            "topic": "chat/lobby",
            "from": "bystander",
            "marker": marker,
            "text": text,
        },
        post_key=post_key,
        answers_post=False,
        known_types=frozenset({"ack", "error", "set_conn_id"}),
        forwards_payloads=True,
        probe=dump({"type": "unsubscribe", "topic": "probe", "id": "probe"}),
        probe_answer="ack",
    )


@functools.cache
def chat_target() -> Target:
    return _chat_target()


@functools.cache
def seed_target() -> Target:
    return _seed_target()


# -- invariants -----------------------------------------------------------------------------------

_TRACE_HINTS = re.compile(
    r"Traceback|File \"|\.py\b|line \d+|site-packages|/work/|/usr/lib|"
    r"\b[A-Z][A-Za-z]*(?:Error|Exception)\b|\bat 0x[0-9a-f]+|<[a-z_.]+ object"
)
_KNOWN_CODES = frozenset(code.value for code in ErrorCode)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str) -> Any:
    """json.loads that refuses NaN/Infinity (not JSON: a browser's JSON.parse rejects them)."""
    return json.loads(text, parse_constant=_reject_constant)


class Checker:
    """Checks every frame the server sends; collects violations instead of raising."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.violations: list[str] = []
        self.errors: Counter[str] = Counter()

    def fail(self, what: str) -> None:
        if len(self.violations) < 50:
            self.violations.append(what)

    def frame(self, role: str, text: str) -> dict[str, Any] | None:
        """Check one server frame; return it decoded (None if it is not a valid frame)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(f"{role}: a frame that is not UTF-8 (lone surrogate): {text[:200]!r}")
            return None
        try:
            obj = strict_loads(text)
        except (ValueError, RecursionError) as exc:
            self.fail(f"{role}: a frame that is not JSON ({exc}): {text[:200]!r}")
            return None
        if not isinstance(obj, dict):
            self.fail(f"{role}: a frame that is not an object: {text[:200]!r}")
            return None
        kind = obj.get("type")
        if kind is None and self.target.forwards_payloads:
            return obj  # a seed payload from another client: its fields minus the envelope
        if kind not in self.target.known_types:
            self.fail(f"{role}: a frame of unknown type {kind!r}: {text[:200]!r}")
            return obj
        if kind == "error":
            self.error(role, obj)
        elif kind not in ("ack", "reply", "set_conn_id") and (
            not isinstance(obj.get("topic"), str) or "data" not in obj
        ):
            self.fail(f"{role}: an event without topic or data: {text[:200]!r}")
        return obj

    def error(self, role: str, obj: dict[str, Any]) -> None:
        code = obj.get("code")
        self.errors[str(code)] += 1
        if code not in _KNOWN_CODES:
            self.fail(f"{role}: an error with an unknown code {code!r}: {obj!r:.300}")
        if code == ErrorCode.INTERNAL_ERROR:
            self.fail(f"{role}: client input caused an internal_error: {obj!r:.300}")
        message = obj.get("message")
        if not isinstance(message, str) or not message:
            self.fail(f"{role}: an error without a message: {obj!r:.300}")
            return
        # "unknown message type '...'" quotes (40 characters of) the client's own type
        own = message.startswith("unknown message type ")
        checked = [message[:21] if own else message]
        for item in obj.get("errors") or []:
            if not isinstance(item, dict) or set(item) != {"loc", "msg", "type"}:
                self.fail(f"{role}: a malformed entry in errors: {item!r:.300}")
                continue
            checked.append(str(item["msg"]))
        for text in checked:
            if _TRACE_HINTS.search(text):
                self.fail(f"{role}: internal details in an error message: {text[:300]!r}")


class _LogTrap(logging.Handler):
    """Records asyncws log records at ERROR and above (a client must never cause one)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def trap_errors() -> Iterator[_LogTrap]:
    trap = _LogTrap()
    logger = logging.getLogger("asyncws")
    logger.addHandler(trap)
    try:
        yield trap
    finally:
        logger.removeHandler(trap)


# -- what a run saw ---------------------------------------------------------------------------------


@dataclass
class Tally:
    """Counts over many scenarios: frames sent per case, what attackers got back per case."""

    examples: int = 0
    steps: int = 0
    frames_sent: int = 0
    deliveries: int = 0
    missed_deliveries: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    answers: dict[str, Counter[str]] = field(default_factory=dict)
    closes: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def answer(self, case: str, outcome: str) -> None:
        self.answers.setdefault(case, Counter())[outcome] += 1


class FuzzViolation(AssertionError):
    """An invariant broke; the message lists every violation seen."""


@dataclass
class _Peer:
    role: str
    session: WebSocketSession
    close_code: int | None = None


async def _drain(peer: _Peer, checker: Checker, timeout: float) -> list[dict[str, Any]]:
    """Read what the server sent ``peer`` until ``timeout`` of silence (or the close)."""
    out: list[dict[str, Any]] = []
    for _ in range(100_000):  # bounded: a flood is answered with a few hundred frames at most
        if peer.close_code is not None:
            break
        try:
            text = await peer.session.receive_text(timeout)
        except TimeoutError:
            break
        except WebSocketClosed as closed:
            peer.close_code = closed.code
            break
        obj = checker.frame(peer.role, text)
        if obj is not None:
            out.append(obj)
    return out


def outcome_name(frames: Iterable[dict[str, Any]], close_code: int | None) -> str:
    """What a client got back, by kind in order: ``error:invalid_json``, ``ack + error:
    too_many_subscriptions``, ``error:rate_limited + close:1008``, ``nothing``.

    Deliveries (events, seed payloads) are not answers: a connection that subscribed may get
    other clients' traffic meanwhile. They are checked like every frame, not named here."""
    kinds: list[str] = []
    for f in frames:
        kind = f.get("type")
        if kind == "error":
            name = f"error:{f.get('code')}"
        elif kind in ("ack", "reply", "set_conn_id"):
            name = str(kind)
        else:
            continue
        if name not in kinds:
            kinds.append(name)
    if close_code is not None:
        kinds.append(f"close:{close_code}")
    return " + ".join(kinds) or "nothing"


async def _send(session: WebSocketSession, frame: Frame) -> None:
    for i, payload in enumerate(frame.payloads):
        if frame.pace and i >= frame.burst:
            await asyncio.sleep(frame.pace)
        if isinstance(payload, bytes):
            await session.send_bytes(payload)
        else:
            await session.send_text(payload)


async def _finish(peer: _Peer, checker: Checker) -> None:
    """Close the client side and check whatever the server still sent; an exception that
    escaped the app surfaces here (the session's task re-raises it)."""
    before = peer.close_code
    try:
        await peer.session.close()
    except Exception as exc:
        checker.fail(f"{peer.role}: an exception escaped the app: {type(exc).__name__}: {exc}")
    await _drain(peer, checker, DRAIN_TIMEOUT)
    if before is None and peer.close_code == 1006:
        peer.close_code = None  # the session's name for "the handler ended" after our close


async def _connect(client: TestClient, role: str, url: str, checker: Checker) -> _Peer | None:
    try:
        return _Peer(role, await client.websocket_connect(url))
    except WebSocketDenied as denied:
        checker.fail(f"{role}: refused with HTTP {denied.status}")
        return None


async def _await_frame(
    peer: _Peer,
    checker: Checker,
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float,
    seen: Counter[str] | None = None,
    target: Target | None = None,
    collect: list[dict[str, Any]] | None = None,
) -> dict[str, Any] | None:
    """Receive (checking every frame) until one satisfies ``predicate``; None on timeout or
    close. Bystander posts met on the way are counted in ``seen``, other frames appended to
    ``collect``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(1_000_000):
        left = deadline - loop.time()
        if left <= 0:
            return None
        try:
            text = await peer.session.receive_text(left)
        except TimeoutError:
            return None
        except WebSocketClosed as closed:
            peer.close_code = closed.code
            return None
        obj = checker.frame(peer.role, text)
        if obj is None:
            continue
        if seen is not None and target is not None and (key := target.post_key(obj)) is not None:
            seen[key] += 1
        if predicate(obj):
            return obj
        if collect is not None:
            collect.append(obj)
    return None


class _Delivery:
    """The bystander's posts and the victim's copies of them."""

    def __init__(self, target: Target, victim: _Peer, bystander: _Peer, checker: Checker) -> None:
        self.target = target
        self.victim = victim
        self.bystander = bystander
        self.checker = checker
        self.nonce = secrets.token_hex(4)  # attackers cannot forge a marker they never saw
        self.count = 0
        self.posted: Counter[str] = Counter()
        self.seen: Counter[str] = Counter()

    async def check(self, text: str, tally: Tally) -> bool:
        """The bystander posts ``text``; the victim must get it, verbatim, within the timeout."""
        self.count += 1
        marker = f"m{self.count}-{self.nonce}"
        target = self.target
        await self.bystander.session.send_text(dump(target.post(marker, text)))
        tally.deliveries += 1
        if target.answers_post:
            answer = await _await_frame(
                self.bystander, self.checker, lambda f: f.get("id") == marker, DELIVERY_TIMEOUT
            )
            if answer is None or answer.get("type") != "reply":
                self.checker.fail(f"bystander: its post {marker} was answered {answer!r:.300}")
                return False
        key = text if target.name == "chat" else marker
        self.posted[key] += 1
        got = await _await_frame(
            self.victim,
            self.checker,
            lambda f: target.post_key(f) == key and self.seen[key] >= self.posted[key],
            DELIVERY_TIMEOUT,
            self.seen,
            target,
        )
        if got is None:
            tally.missed_deliveries += 1
            self.checker.fail(f"victim: did not receive the post {marker} {text!r:.80}")
            return False
        return True

    def duplicates(self) -> list[str]:
        return [k for k, n in self.seen.items() if n > self.posted[k]]


async def run_scenario(
    target: Target,
    n_attackers: int,
    scenario: Sequence[tuple[Sequence[tuple[int, Frame]], str]],
    tally: Tally | None = None,
) -> Tally:
    """Run one scenario on a fresh lifespan of ``target.app``; raise `FuzzViolation` listing
    every invariant it broke.

    After every step (1-3 attackers send their frames at once) the bystander posts and the
    victim must receive exactly that post, once, within `DELIVERY_TIMEOUT`; every frame any
    client gets is checked (`Checker`); attackers may be closed only with 1008/1009 (then a
    new attacker takes their place); the victim and the bystander are never closed; nothing
    is logged at ERROR by asyncws, no exception escapes the app, and once every client left
    the manager holds no connection, subscription or user.
    """
    tally = tally if tally is not None else Tally()
    checker = Checker(target)
    loop = asyncio.get_running_loop()
    loop_errors: list[str] = []
    loop.set_exception_handler(lambda _loop, ctx: loop_errors.append(str(ctx.get("message"))))
    with trap_errors() as trap:
        async with TestClient(target.app, timeout=DELIVERY_TIMEOUT) as client:
            await _scenario(client, target, n_attackers, scenario, tally, checker)
            manager = target.manager
            if manager.connections or len(manager.index) or manager.users:
                checker.fail(
                    f"state left behind after every client left: {len(manager.connections)} "
                    f"connections, {len(manager.index)} patterns, {len(manager.users)} users"
                )
    for record in trap.records:
        exc = record.exc_info[1] if record.exc_info else None
        checker.fail(
            f"the server logged an error: {record.getMessage()[:300]}"
            + (f" ({type(exc).__name__}: {exc})" if exc else "")
        )
    for message in loop_errors:
        checker.fail(f"event loop: {message}")
    tally.examples += 1
    tally.errors.update(checker.errors)
    if checker.violations:
        tally.violations.extend(checker.violations)
        raise FuzzViolation("\n".join(checker.violations))
    return tally


async def _scenario(
    client: TestClient,
    target: Target,
    n_attackers: int,
    scenario: Sequence[tuple[Sequence[tuple[int, Frame]], str]],
    tally: Tally,
    checker: Checker,
) -> None:
    victim = await _connect(client, "victim", target.victim_url, checker)
    bystander = await _connect(client, "bystander", target.bystander_url, checker)
    attackers: list[_Peer | None] = []
    generation = 0
    try:
        if victim is None or bystander is None:
            return
        for i, pattern in enumerate(target.victim_patterns):
            await victim.session.send_text(dump({"type": "subscribe", "topic": pattern, "id": i}))
            ack = await _await_frame(victim, checker, lambda f, i=i: f.get("id") == i, 5.0)
            if ack is None or ack.get("type") != "ack":
                checker.fail(f"victim: subscribing to {pattern!r} answered {ack!r}")
        for i in range(n_attackers):
            attackers.append(
                await _connect(client, f"attacker{i}", target.attacker_url(f"{i}-0"), checker)
            )
        delivery = _Delivery(target, victim, bystander, checker)
        for actions, text in scenario:
            tally.steps += 1
            sent: list[tuple[int, Frame]] = []
            for index, frame in actions:
                i = index % n_attackers
                peer = attackers[i]
                if peer is None or peer.close_code is not None:
                    continue
                await _send(peer.session, frame)
                tally.frames_sent += len(frame.payloads)
                tally.sent[frame.case] += 1
                sent.append((i, frame))
            await delivery.check(text, tally)
            for i, maybe in enumerate(attackers):
                if maybe is None:
                    continue
                got = await _drain(maybe, checker, DRAIN_TIMEOUT)
                cases = [f.case for j, f in sent if j == i]
                outcome = outcome_name(got, maybe.close_code)
                for case in cases:
                    tally.answer(case, outcome)
                if maybe.close_code is not None:
                    tally.closes[maybe.close_code] += 1
                    if maybe.close_code not in ATTACKER_CLOSE_CODES:
                        checker.fail(f"{maybe.role} closed with {maybe.close_code} after {cases}")
                    await _finish(maybe, checker)
                    generation += 1
                    attackers[i] = await _connect(
                        client, maybe.role, target.attacker_url(f"{i}-{generation}"), checker
                    )
            if checker.violations:
                break
        await _drain(victim, checker, DRAIN_TIMEOUT)  # late duplicates
        dupes = delivery.duplicates()
        if dupes:
            checker.fail(f"victim: posts delivered more than once: {dupes[:5]!r:.300}")
    finally:
        for maybe in [*attackers, bystander, victim]:
            if maybe is not None:
                await _finish(maybe, checker)
        for peer in (victim, bystander):
            if peer is not None and peer.close_code not in (None, 1000):
                checker.fail(f"{peer.role} was closed by the server with {peer.close_code}")


# -- the corpus: one instance of every hostile case, with the answer it must get ----------------

#: The frame each dialect's field-level abuse is built on.
CHAT_BASE: dict[str, Any] = {"type": "post", "id": 1, "data": {"room": "lobby", "text": "hi"}}
SEED_BASE: dict[str, Any] = {"type": "subscribe", "id": 1, "topic": "chat/lobby"}


@dataclass(frozen=True)
class Case:
    """A hostile case: its frame for each endpoint and the answer it must get there
    (an `outcome_name`; None: not sent to that endpoint)."""

    name: str
    chat: Frame | None
    chat_expect: str | None
    seed: Frame | None
    seed_expect: str | None
    note: str = ""

    def frame(self, target: str) -> Frame | None:
        return self.chat if target == "chat" else self.seed

    def expect(self, target: str) -> str | None:
        return self.chat_expect if target == "chat" else self.seed_expect

    def accepts(self, target: str, outcome: str) -> bool:
        """Whether ``outcome`` is the documented answer (``a | b``: either, by timing)."""
        expected = self.expect(target)
        return expected is not None and outcome in expected.split(" | ")


def _both(
    name: str,
    build: Callable[[dict[str, Any]], str | bytes],
    chat: str | None,
    seed: str | None,
    note: str = "",
) -> Case:
    """A case built on each dialect's base frame."""
    return Case(
        name,
        one(name, build(CHAT_BASE)) if chat is not None else None,
        chat,
        one(name, build(SEED_BASE)) if seed is not None else None,
        seed,
        note,
    )


def _same(
    name: str, payload: str | bytes, chat: str | None, seed: str | None, note: str = ""
) -> Case:
    """A case with the same frame for both endpoints."""
    return _both(name, lambda _base: payload, chat, seed, note)


def _chat(name: str, payload: str | bytes, expect: str, note: str = "") -> Case:
    return Case(name, one(name, payload), expect, None, None, note)


def _seed(name: str, payload: str | bytes, expect: str, note: str = "") -> Case:
    return Case(name, None, None, one(name, payload), expect, note)


def _sub(topic: str) -> str:
    return dump({"type": "subscribe", "id": 1, "topic": topic})


def _build_corpus() -> list[Case]:
    send = {"type": "send", "topic": "chat/lobby", "text": "hi"}
    with_id = {"type": "whoami", "id": 1}
    ij, fr, ut, vt = (
        "error:invalid_json",
        "error:invalid_frame",
        "error:unknown_type",
        "error:validation_error",
    )
    it, uk, fb = "error:invalid_topic", "error:unknown_topic", "error:forbidden"
    return [
        # -- not JSON
        _both("truncated JSON", lambda b: dump(b)[:20], ij, ij),
        _same("empty text frame", "", ij, ij),
        _both("trailing garbage", lambda b: dump(b) + "x", ij, ij),
        _both("two objects in one frame", lambda b: dump(b) * 2, ij, ij),
        _both("UTF-8 BOM before the object", lambda b: "\ufeff" + dump(b), ij, ij),
        _both("single quotes", lambda b: dump(b).replace('"', "'"), ij, ij),
        _both(
            "NaN as id",
            lambda b: _with_raw(b, "id", "NaN"),
            fr,
            ij,
            "not JSON; pydantic's parser reads it as a float id, the seed's parser refuses it",
        ),
        _both("Infinity as data", lambda b: _with_raw(b, "data", "Infinity"), vt, ij),
        _both(
            "1e999999 as id (overflows a double)", lambda b: _with_raw(b, "id", "1e999999"), fr, ij
        ),
        _both(
            "10^6-digit integer as id",
            lambda b: _with_raw(b, "id", _big_digits()),
            ij,
            ij,
            "both parsers refuse it quickly (pydantic's, and Python's int_max_str_digits)",
        ),
        _both("lone surrogate as id", lambda b: dump({**b, "id": "\ud800"}), ij, ij),
        _both("lone surrogate as a key", lambda b: dump({**b, "\udfff": 1}), ij, ij),
        _both(
            "lone surrogate in topic",
            lambda b: dump({**b, "type": "subscribe", "topic": "rooms/\ud800"}),
            ij,
            ij,
        ),
        _chat(
            "lone surrogate in text",
            dump({**CHAT_BASE, "data": {"room": "lobby", "text": "\ud83d"}}),
            ij,
        ),
        _same("arrays nested 100,000 deep", _deep_arrays(), ij, ij),
        _both(
            "objects nested 50,000 deep as data",
            lambda b: _with_raw(b, "data", _deep_objects()),
            ij,
            ij,
        ),
        _both(
            "arrays nested 900 deep as data",
            lambda b: _with_raw(b, "data", _deep_arrays_900()),
            ij,
            "ack",
            "seed: parsed and ignored (subscribe has no data)",
        ),
        # -- JSON, not a frame
        _both("a JSON array", lambda b: "[" + dump(b) + "]", fr, fr),
        _same("a JSON string", '"post"', fr, fr),
        _same("a JSON number", "42", fr, fr),
        _same("JSON null", "null", fr, fr),
        _same(
            "binary frame (random bytes)",
            b"\x00\xff\x81garbage",
            "error:unsupported_data",
            "error:unsupported_data",
        ),
        _both(
            "binary frame (valid JSON)",
            lambda b: dump(b).encode(),
            "error:unsupported_data",
            "error:unsupported_data",
        ),
        # -- envelope fields of the wrong type
        _same("type missing", dump({"id": 1, "data": {}}), fr, ut),
        _both("type is a number", lambda b: dump({**b, "type": 5}), fr, ut),
        _both("type is null", lambda b: dump({**b, "type": None}), fr, ut),
        _both("type is a list", lambda b: dump({**b, "type": [b["type"]]}), fr, ut),
        _both("type is an object", lambda b: dump({**b, "type": {"a": 1}}), fr, ut),
        _both("type is empty", lambda b: dump({**b, "type": ""}), fr, ut),
        _both(
            "type of 1,000,000 characters",
            lambda b: dump({**b, "type": "x" * 1_000_000}),
            ut,
            ut,
            "the message quotes its first 40 characters",
        ),
        _both(
            "id is a float",
            lambda b: dump({**b, "id": 1.5}),
            fr,
            "nothing",
            "seed: ids are not checked; the frame is handled, without an ack",
        ),
        _both("id is a bool", lambda b: dump({**b, "id": True}), fr, "nothing"),
        _both("id is an object", lambda b: dump({**b, "id": {"a": 1}}), fr, "nothing"),
        _both("id is 2^53+1", lambda b: dump({**b, "id": 2**53 + 1}), fr, "nothing"),
        _both("id is 10^30", lambda b: dump({**b, "id": 10**30}), fr, "nothing"),
        _both("id of 65 characters", lambda b: dump({**b, "id": "x" * 65}), fr, "nothing"),
        _both("id of 10,000 characters", lambda b: dump({**b, "id": "x" * 10_000}), fr, "nothing"),
        _same("topic is a number", dump({"type": "subscribe", "id": 1, "topic": 5}), fr, it),
        _same("topic is null", dump({"type": "subscribe", "id": 1, "topic": None}), fr, it),
        _same(
            "topic is a list",
            dump({"type": "subscribe", "id": 1, "topic": ["rooms/lobby"]}),
            fr,
            it,
        ),
        _chat("data is a string", dump({**CHAT_BASE, "data": "x"}), vt),
        _chat("data is a list", dump({**CHAT_BASE, "data": [1]}), vt),
        _chat("data is null", dump({**CHAT_BASE, "data": None}), vt),
        _chat("data missing", dump({"type": "post", "id": 1}), vt),
        _chat("text is a number", dump({**CHAT_BASE, "data": {"room": "lobby", "text": 5}}), vt),
        _chat(
            "text over 2000 characters",
            dump({**CHAT_BASE, "data": {"room": "lobby", "text": "x" * 2001}}),
            vt,
        ),
        _chat(
            "room breaking its pattern",
            dump({**CHAT_BASE, "data": {"room": "../x", "text": "a"}}),
            vt,
        ),
        _both(
            "extra fields",
            lambda b: dump({**b, "admin": True, "user": "root"}),
            "reply",
            "ack",
            "ignored",
        ),
        _both(
            "__proto__ / constructor keys",
            lambda b: dump(
                {**b, "__proto__": {"admin": True}, "constructor": {"prototype": {"admin": True}}}
            ),
            "reply",
            "ack",
            "plain keys to Python: ignored",
        ),
        _chat(
            "__proto__ inside data",
            dump(
                {
                    **CHAT_BASE,
                    "data": {"room": "lobby", "text": "x", "__proto__": {"user": "admin"}},
                }
            ),
            "reply",
            "ignored",
        ),
        _same(
            "only a __proto__ holding the type",
            dump({"__proto__": {"type": "post"}, "id": 1}),
            fr,
            ut,
        ),
        _same("type __proto__", dump({"type": "__proto__", "id": 1}), ut, ut),
        _same("type constructor", dump({"type": "constructor", "id": 1}), ut, ut),
        _same("type __class__", dump({"type": "__class__", "id": 1}), ut, ut),
        _same("type handle_frame (a method name)", dump({"type": "handle_frame", "id": 1}), ut, ut),
        _both(
            "duplicate type keys",
            lambda b: '{"type":"nope",' + dump(b)[1:],
            "reply",
            "ack",
            "the last key wins",
        ),
        _both(
            "duplicate id keys",
            lambda b: dump(b)[:-1] + ',"id":"two"}',
            "reply",
            "ack",
            'the last key wins (the answer carries id "two")',
        ),
        _same(
            "duplicate topic keys",
            '{"type":"subscribe","id":1,"topic":"rooms/lobby","topic":"users/victim/inbox"}',
            fb,
            "ack",
            "the last key wins: someone else's inbox (seed: any pattern is allowed)",
        ),
        # -- text that must stay text
        _chat(
            "SQL in a text field",
            dump({**CHAT_BASE, "data": {"room": "lobby", "text": "'; DROP TABLE users; --"}}),
            "reply",
            "delivered verbatim",
        ),
        _chat(
            "HTML/script in a text field",
            dump({**CHAT_BASE, "data": {"room": "lobby", "text": "<script>alert(1)</script>"}}),
            "reply",
            "delivered verbatim",
        ),
        _chat(
            "JSON-looking text",
            dump({**CHAT_BASE, "data": {"room": "lobby", "text": '"},{"type":"ack","id":1}'}}),
            "reply",
            "delivered verbatim",
        ),
        _seed(
            "SQL/HTML in a forwarded field",
            dump({**send, "text": "<script>alert(1)</script>'; --"}),
            "nothing",
            "forwarded verbatim to the topic's subscribers",
        ),
        # -- frames only a server sends
        _same("a client-sent ack", dump({"type": "ack", "id": 1}), ut, ut),
        _same("a client-sent reply", dump({"type": "reply", "id": 1, "data": {}}), ut, ut),
        _same(
            "a client-sent error",
            dump({"type": "error", "id": 1, "code": "internal_error", "message": "x"}),
            ut,
            ut,
        ),
        _same("a client-sent event", dump(SERVER_LOOKALIKES[3]), ut, ut),
        _same(
            "a client-sent set_conn_id", dump({"type": "set_conn_id", "conn_id": "victim"}), ut, ut
        ),
        # -- topics
        _chat(
            "publish where client_publish is False",
            dump(
                {
                    "type": "publish",
                    "id": 1,
                    "topic": "rooms/lobby",
                    "data": SERVER_LOOKALIKES[3]["data"],
                }
            ),
            fb,
        ),
        _chat(
            "publish to a pattern",
            dump({"type": "publish", "id": 1, "topic": "rooms/+", "data": {}}),
            it,
        ),
        _chat(
            "publish to an undeclared topic",
            dump({"type": "publish", "id": 1, "topic": "nowhere", "data": {}}),
            uk,
        ),
        _chat("subscribe to someone else's inbox", _sub("users/victim/inbox"), fb),
        _chat("subscribe to every inbox (+)", _sub("users/+/inbox"), fb),
        _same(
            "subscribe to everything (#)",
            _sub("#"),
            uk,
            "ack",
            "the seed protocol accepts any pattern",
        ),
        _same("subscribe users/#", _sub("users/#"), uk, "ack"),
        _same(
            "subscribe rooms/#",
            _sub("rooms/#"),
            "ack",
            "ack",
            "allowed: it reaches rooms/{room} and rooms/{room}/typing, neither has a rule",
        ),
        _same("'#' not last", _sub("rooms/#/x"), it, it),
        _same("'+' inside a level", _sub("rooms/a+"), it, it),
        _same("empty topic", _sub(""), it, it),
        _same("topic with NUL", _sub("rooms/lobby\x00"), it, it),
        _same("topic with ESC", _sub("rooms/\x1b[31m"), it, it),
        _same(
            "topic with RTL override",
            _sub("rooms/\u202elobby"),
            uk,
            "ack",
            "valid; no room has that name",
        ),
        _same("topic with 10,000 levels", _sub("a/" * 10_000), it, it),
        _same("pattern with 10,000 '+' levels", _sub("+/" * 10_000 + "#"), it, it),
        _same("topic over 256 characters", _sub("rooms/" + "a" * 300), it, it),
        _same(
            "topic with path traversal",
            _sub("rooms/../users/victim/inbox"),
            uk,
            "ack",
            "levels are compared literally",
        ),
        _same(
            "unsubscribe something never subscribed",
            dump({"type": "unsubscribe", "id": 1, "topic": "rooms/never"}),
            "ack",
            "ack",
        ),
        # -- the seed's forwarding
        _seed(
            "NaN in a forwarded field",
            _with_raw(send, "x", "NaN"),
            ij,
            "forwarding it would send invalid JSON to the subscribers",
        ),
        _seed("-Infinity in a broadcast", _with_raw({"type": "broadcast"}, "x", "-Infinity"), ij),
        _seed("1e999999 in a forwarded field", _with_raw(send, "x", "1e999999"), ij),
        _seed(
            "lone surrogate in a forwarded field",
            dump({**send, "x": "\udc00"}),
            ij,
            "it cannot be encoded as UTF-8 for the subscribers",
        ),
        _seed(
            "arrays nested 900 deep, forwarded",
            _with_raw(send, "x", _deep_arrays_900()),
            ij,
            "Python's parser takes it; it cannot be encoded again for the subscribers",
        ),
        _seed(
            "4300-digit integer, forwarded",
            _with_raw(send, "x", "9" * 4300),
            "nothing",
            "the largest integer Python parses; forwarded as is",
        ),
        _seed("send without topic", dump({"type": "send", "x": 1}), it),
        _seed("send to a pattern", dump({"type": "send", "topic": "chat/+", "x": 1}), it),
        _seed(
            "conn_id of the wrong type", dump({"type": "send_by_conn_id", "conn_id": {"a": 1}}), fr
        ),
        _seed("conn_id missing", dump({"type": "send_by_conn_id", "x": 1}), fr),
        _seed("conn_id: an empty list", dump({"type": "send_by_conn_id", "conn_id": []}), fr),
        _seed("conn_id: 1001 ids", dump({"type": "send_by_conn_id", "conn_id": ["x"] * 1001}), fr),
        _seed(
            "conn_id: 17 distinct ids",
            dump({"type": "send_by_conn_id", "conn_id": [f"c{i}" for i in range(17)], "x": 1}),
            fr,
            "at most Limits.max_recipients (16) per frame",
        ),
        _seed(
            "conn_id: 1000 copies of one id, 900 KB of text",
            dump({"type": "send_by_conn_id", "conn_id": ["victim"] * 1000, "text": "A" * 900_000}),
            "nothing",
            "deduplicated: one broker message, one delivery",
        ),
        _seed(
            "conn_id: 16 ids, 900 KB of text",
            dump(
                {
                    "type": "send_by_conn_id",
                    "conn_id": [f"c{i}" for i in range(16)],
                    "t": "A" * 900_000,
                }
            ),
            "error:rate_limited",
            "16 x 900 KB is over Limits.max_fanout_bytes (1 MiB): nothing is published",
        ),
        _seed(
            "conn_id with a lone surrogate",
            dump({"type": "send_by_conn_id", "conn_id": ["victim", "\ud800"], "x": 1}),
            ij,
        ),
        _seed(
            "conn_id with '/', '+', '#'",
            dump({"type": "send_by_conn_id", "conn_id": "a/+/#", "x": 1}),
            "nothing",
            "no connection has that id: nothing is sent",
        ),
        # -- size
        _both(
            "frame over max_frame_size (1 MiB)",
            lambda b: _padded(b, MAX_FRAME_SIZE + 1),
            "close:1009",
            "close:1009",
        ),
        # -- floods
        Case(
            "subscription flood (261 topics)",
            Frame(
                "flood/subscriptions",
                tuple(
                    _sub(f"rooms/flood-{i}").replace('"id": 1', f'"id": {i}') for i in range(261)
                ),
                pace=0.021,
                burst=90,
            ),
            "ack + error:too_many_subscriptions",
            Frame(
                "flood/subscriptions",
                tuple(_sub(f"flood/{i}").replace('"id": 1', f'"id": {i}') for i in range(261)),
            ),
            "ack + error:too_many_subscriptions",
            "256 per connection (the chat flood is paced under the rate limit)",
        ),
        Case(
            "rate flood (130 frames at once)",
            Frame("flood/rate", tuple(dump({"type": "whoami"}) for _ in range(130))),
            "error:rate_limited + close:1008 | error:rate_limited",
            None,
            None,
            "burst 100, then rate_limited for each frame over the rate, 1008 after 20 in a row "
            "(over a network a slower sender may earn tokens back between frames: no close)",
        ),
        _same_flood(
            "bad-frame flood (25 invalid frames)",
            "nope",
            25,
            "error:invalid_json + close:1008",
            "2 strikes per bad frame, 1 back per good one: closed past 40",
        ),
        _chat("a valid frame (control)", dump(with_id), "reply"),
    ]


def _same_flood(name: str, payload: str, n: int, expect: str, note: str) -> Case:
    frame = Frame("flood/invalid", tuple(payload for _ in range(n)))
    return Case(name, frame, expect, frame, expect, note)


@functools.cache
def corpus() -> tuple[Case, ...]:
    """Every hostile case, once (built on first use: some frames are 1 MiB)."""
    return tuple(_build_corpus())


@dataclass
class CaseResult:
    case: Case
    outcome: str
    probe_ok: bool  # the connection still answered a valid frame afterwards
    frames: list[dict[str, Any]]
    close_code: int | None


async def run_case(
    client: TestClient, target: Target, case: Case, checker: Checker, n: int
) -> CaseResult:
    """Send ``case``'s frame on a new connection, then the probe; name what came back before
    the probe's answer (the probe's answer itself says the connection still works)."""
    frame = case.frame(target.name)
    assert frame is not None
    peer = await _connect(client, "attacker", target.attacker_url(f"c{n}"), checker)
    if peer is None:
        return CaseResult(case, "refused", False, [], None)
    await _send(peer.session, frame)
    await peer.session.send_text(target.probe)
    frames: list[dict[str, Any]] = []
    probe = await _await_frame(peer, checker, lambda f: f.get("id") == "probe", 5.0, collect=frames)
    probe_ok = probe is not None and probe.get("type") == target.probe_answer
    if probe is None and peer.close_code is None:
        checker.fail(f"{case.name}: no answer to the probe and no close")
    await _finish(peer, checker)
    return CaseResult(
        case, outcome_name(frames, peer.close_code), probe_ok, frames, peer.close_code
    )


async def run_corpus(
    target: Target, cases: Sequence[Case], tally: Tally | None = None
) -> tuple[list[CaseResult], list[str]]:
    """Every case on its own connection, with the victim checked after each; returns the
    results and the violations (a wrong answer is reported by the caller, not here)."""
    tally = tally if tally is not None else Tally()
    checker = Checker(target)
    results: list[CaseResult] = []
    with trap_errors() as trap:
        async with TestClient(target.app, timeout=DELIVERY_TIMEOUT) as client:
            victim = await _connect(client, "victim", target.victim_url, checker)
            bystander = await _connect(client, "bystander", target.bystander_url, checker)
            assert victim is not None and bystander is not None
            for i, pattern in enumerate(target.victim_patterns):
                await victim.session.send_text(
                    dump({"type": "subscribe", "topic": pattern, "id": i})
                )
                await _await_frame(victim, checker, lambda f, i=i: f.get("id") == i, 5.0)
            delivery = _Delivery(target, victim, bystander, checker)
            for n, case in enumerate(cases):
                if case.frame(target.name) is None:
                    continue
                results.append(await run_case(client, target, case, checker, n))
                await delivery.check(f"after {case.name}", tally)
            for peer in (bystander, victim):
                await _finish(peer, checker)
                if peer.close_code not in (None, 1000):
                    checker.fail(f"{peer.role} was closed with {peer.close_code}")
            manager = target.manager
            if manager.connections or len(manager.index) or manager.users:
                checker.fail("state left behind after every client left")
    for record in trap.records:
        checker.fail(f"the server logged an error: {record.getMessage()[:300]}")
    return results, checker.violations
