"""Client code from AsyncAPI documents: typed Python and TypeScript clients.

    from asyncws.codegen import generate
    written = generate(document, "python", Path("client/"))

``generate`` reads the document into a neutral description (`describe`, in ``model.py``:
operations, topics, schemas, error codes) and renders one language's templates
(``templates/clients/<lang>/``). ``asyncws codegen SPEC --lang python|typescript -o DIR``
does the same from the command line, printing the warnings (what the document uses that
the client cannot support); blocking problems raise `CodegenError`.

The output depends only on the document (and the name): the same document gives the same
bytes, so a committed client can be checked for drift by generating it again.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .framed import FramedClient, describe_framed, render_framed
from .model import ClientDescription, CodegenError
from .reader import describe

__all__ = [
    "LANGUAGES",
    "ClientDescription",
    "CodegenError",
    "FramedClient",
    "describe",
    "describe_any",
    "generate",
    "render",
]

#: The languages `generate` knows.
LANGUAGES = ("python", "typescript")


def _environment() -> Any:
    import jinja2

    from ..resources import templates_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=False,  # code, not HTML: literals are escaped by the generators
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )


def describe_any(
    document: Mapping[str, Any],
    name: str | None = None,
    *,
    skip_unsupported: bool = False,
    framing: str | None = None,
) -> ClientDescription | FramedClient:
    """The client description of ``document`` in its framing
    (`asyncws.asyncapi.reader.framing_of_document`): asyncws's envelope gives a
    `ClientDescription`, the document's own framing a `FramedClient`. Servers of other
    protocols than ws/wss stop it, named."""
    from ..asyncapi.reader import framing_of_document, protocol_problems

    if (framing or framing_of_document(document)) == "document":
        return describe_framed(document, name, skip_unsupported=skip_unsupported)
    problems = protocol_problems(document)
    if problems:
        raise CodegenError(problems)
    return describe(document, name)


def render(
    document: Mapping[str, Any] | ClientDescription | FramedClient,
    lang: str,
    *,
    name: str | None = None,
) -> dict[str, str]:
    """The files of the client (relative path -> text), without writing them."""
    if lang not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")
    client = (
        document
        if isinstance(document, ClientDescription | FramedClient)
        else describe_any(document, name)
    )
    if isinstance(client, FramedClient):
        return render_framed(client, lang, _environment())
    if lang == "python":
        from .python import render as render_python

        return render_python(client, _environment())
    if lang == "typescript":
        from .typescript import render as render_typescript

        return render_typescript(client, _environment())
    raise ValueError(f"unknown language {lang!r}: expected one of {', '.join(LANGUAGES)}")


def generate(
    document: Mapping[str, Any] | ClientDescription | FramedClient,
    lang: str,
    out_dir: Path,
    *,
    name: str | None = None,
) -> list[Path]:
    """Write the client for ``document`` in ``lang`` under ``out_dir``; returns the files.

    ``name`` is the base of the class names (``"chat"``: ``ChatClient``, package
    ``chat_client``, module ``chat-client.ts``); by default the document's title.
    ``document`` may also be what `describe` returned (its ``warnings`` list what the
    client cannot support). Raises `CodegenError` when the document cannot give a client.
    """
    files = render(document, lang, name=name)
    out_dir = Path(out_dir)
    written: list[Path] = []
    for relative, text in sorted(files.items()):
        path = out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written
