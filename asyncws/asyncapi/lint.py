"""``asyncws check``: a document on its own, and a document against an app, frames included.

`lint` reads a document the way spec-first and codegen will (`framing_of_document`, then
`asyncws.asyncapi.checks.check_document` for asyncws's envelope or
`asyncws.asyncapi.reader.read_api` for the document's own framing) and returns the problems
that stop them, plus notes: the framing, each endpoint, and how each frame will be told
apart on the wire (the discriminators both sides use; a pair of messages that only a schema
match tells apart is a warning).

`compare_wire` compares the frames two sides will use: the framing, the endpoints
(addresses), the operations (ids, actions) and, per message, the discriminators and the
correlation location.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..framing import indistinct
from .checks import check_document
from .reader import SpecError, WireAPI, framing_of_document, protocol_problems, read_api

__all__ = ["compare_wire", "describe_frames", "lint"]


def describe_frames(api: WireAPI) -> list[str]:
    """One line per endpoint and per message: how its frames are told apart."""
    lines = []
    for ep in api.endpoints:
        params = f" (path parameters: {', '.join(ep.params)})" if ep.params else ""
        lines.append(f"endpoint {ep.address}{params}: channels {', '.join(ep.channels)}")
        for op in ep.receive:
            for m in op.messages:
                lines.append(f"  client -> server {op.id}: {_frame_rule(m.shape)}")
            for m in op.replies:
                lines.append(f"    reply {m.name}: {_frame_rule(m.shape)}")
        for op in ep.send:
            for m in op.messages:
                lines.append(f"  server -> client {op.id}: {_frame_rule(m.shape)}")
    return lines


def _frame_rule(shape: Any) -> str:
    parts = [f"{prop}={'|'.join(map(str, values))}" for prop, values in shape.discriminator.items()]
    rule = " ".join(parts) if parts else "(schema match only)"
    if shape.correlation:
        rule += f", correlated by /{'/'.join(shape.correlation)}"
    return f"{shape.name} [{rule}]"


def lint(document: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """``(problems, notes)`` of a document on its own (see the module docstring)."""
    framing = framing_of_document(document)
    if framing == "asyncws":
        problems = protocol_problems(document) + check_document(document)
        return problems, ["framing: asyncws's envelope ({type, id, topic, data})"]
    try:
        api = read_api(document)
    except SpecError as exc:
        return exc.problems, ["framing: the document's own (the payload is the frame)"]
    notes = ["framing: the document's own (the payload is the frame)", *describe_frames(api)]
    for ep in api.endpoints:
        inbound = ep.inbound()
        outbound = [m.shape for m in ep.outbound()]
        for label, shapes in (("received", inbound), ("sent", outbound)):
            for a, b in indistinct(list({s.key: s for s in shapes}.values())):
                notes.append(
                    f"warning: {a.name!r} and {b.name!r} {label} on {ep.address} are told apart "
                    "by a schema match only (a const discriminator would be cheaper and sure)"
                )
    return [], notes


def compare_wire(expected: WireAPI, actual: WireAPI) -> list[str]:
    """The differences in frames between the document (``expected``) and the app."""
    out = []
    exp = {ep.address: ep for ep in expected.endpoints}
    act = {ep.address: ep for ep in actual.endpoints}
    for address in exp.keys() - act.keys():
        out.append(f"endpoint {address}: in the document, not served by the app")
    for address in act.keys() - exp.keys():
        out.append(f"endpoint {address}: served by the app, not in the document")
    for address in sorted(exp.keys() & act.keys()):
        e, a = exp[address], act[address]
        e_ops = {(op.id, op.action): op for op in (*e.receive, *e.send)}
        a_ops = {(op.id, op.action): op for op in (*a.receive, *a.send)}
        for key in sorted(e_ops.keys() - a_ops.keys()):
            out.append(f"{address}: {key[1]} operation {key[0]!r} is missing from the app")
        for key in sorted(a_ops.keys() - e_ops.keys()):
            out.append(f"{address}: the app has {key[1]} operation {key[0]!r}, the document not")
        for key in sorted(e_ops.keys() & a_ops.keys()):
            eo, ao = e_ops[key], a_ops[key]
            for what, em, am in (
                ("message", eo.messages, ao.messages),
                ("reply", eo.replies, ao.replies),
            ):
                e_rules = {m.key: _frame_rule(m.shape) for m in em}
                a_rules = {m.key: _frame_rule(m.shape) for m in am}
                if e_rules != a_rules:
                    out.append(
                        f"{address} {key[0]!r}: {what} frames differ: document "
                        f"{sorted(e_rules.values())}, app {sorted(a_rules.values())}"
                    )
    return out
