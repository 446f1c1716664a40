"""The ``asyncws`` command: AsyncAPI documents, HTML docs, checks and client code.

    asyncws spec MODULE:APP [--format json|yaml] [-o FILE] [--server-url URL]
    asyncws docs MODULE:APP -o DIR
    asyncws check SPEC [MODULE:APP]
    asyncws codegen SPEC --lang python|typescript -o DIR [--name NAME] [--skip-unsupported]
    asyncws run MODULE:APP [--host H] [--port P] [--workers N] [--reload] [--show]

``SPEC`` is a ``.json``/``.yaml`` file, or for ``codegen`` also an http(s) URL (e.g. an
app's ``/asyncapi.json``). ``MODULE:APP`` names an `AsyncWS` app, or a FastAPI/Starlette app that included one's
``asgi_router`` (the AsyncWS is found through its websocket route); ``MODULE`` alone works
when the module holds exactly one `AsyncWS`. A file path works too: ``examples/chat/app.py``
or ``examples/chat/app.py:ws`` (imported as ``examples.chat.app``: the directories with an
``__init__.py`` above it are its packages). The current directory is importable, as with
uvicorn. Exit status: 0 on success, 1 when ``check`` finds differences, 2 for usage errors
(bad target, unreadable file, missing optional module).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from .targets import CLIError, find_app, load_target

__all__ = ["CLIError", "find_app", "load_target", "main"]


def _load_spec(path: str) -> dict[str, Any]:
    from .spec import load_document

    try:
        return load_document(path)
    except OSError as exc:
        raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise CLIError(f"{path}: {exc}") from exc


def _write(text: str, output: str | None) -> None:
    if output is None or output == "-":
        sys.stdout.write(text)
        return
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _cmd_spec(args: argparse.Namespace) -> int:
    from .asyncapi import build_document, document_json, document_yaml

    app = load_target(args.target)
    document = build_document(
        app, server_url=args.server_url, asyncapi_version=args.asyncapi_version
    )
    fmt = args.format
    if fmt is None:
        fmt = "yaml" if args.output and args.output.endswith((".yaml", ".yml")) else "json"
    _write(document_yaml(document) if fmt == "yaml" else document_json(document), args.output)
    return 0


def _cmd_docs(args: argparse.Namespace) -> int:
    from .asyncapi import build_document, document_json, document_yaml
    from .asyncapi.model import endpoint_address

    app = load_target(args.target)
    document = build_document(app, server_url=args.server_url)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    (out / "asyncapi.json").write_text(document_json(document), encoding="utf-8")
    (out / "asyncapi.yaml").write_text(document_yaml(document), encoding="utf-8")
    written = ["asyncapi.json", "asyncapi.yaml"]
    if importlib.util.find_spec("asyncws.docs") is not None:
        docs = importlib.import_module("asyncws.docs")
        html = docs.render_html(document, endpoint_address(app.path))
        (out / "index.html").write_text(html, encoding="utf-8")
        written.insert(0, "index.html")
    else:
        print("asyncws.docs is not available: no index.html written", file=sys.stderr)
    print(f"wrote {', '.join(written)} to {out}", file=sys.stderr)
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from .asyncapi import build_document
    from .asyncapi.checks import compare
    from .asyncapi.lint import compare_wire, lint
    from .asyncapi.reader import framing_of_document, read_api

    expected = _load_spec(args.spec)
    problems, notes = lint(expected)
    if args.target is None:
        for line in notes:
            print(line)
        if problems:
            print(f"{args.spec} cannot be served or called as it is:")
            for line in problems:
                print(f"  {line}")
            return 1
        print(f"{args.spec}: ok")
        return 0
    app = load_target(args.target)
    doc_framing = framing_of_document(expected)
    app_framing = getattr(getattr(app, "framing", None), "name", "asyncws")
    differences: list[str] = []
    if doc_framing != app_framing:
        differences.append(
            f"framing: the document's frames are in {_FRAMINGS[doc_framing]}, the app's in "
            f"{_FRAMINGS[app_framing]}: neither side would understand the other"
        )
    elif doc_framing == "document":
        api = getattr(app.spec, "api", None)
        if api is None:  # a code-first app: its frames as its own document says them
            api = read_api(build_document(app))
        if not problems:
            differences = compare_wire(read_api(expected), api)
    else:
        differences = compare(expected, build_document(app))
    problems = [f"document: {p}" for p in problems]
    if not problems and not differences:
        print(f"{args.target} implements {args.spec}")
        return 0
    print(f"{args.target} does not implement {args.spec}:")
    for line in problems + differences:
        print(f"  {line}")
    print("(expected: the document; got: the app)")
    return 1


_FRAMINGS = {
    "asyncws": "asyncws's envelope",
    "document": "the document's own framing (the payload is the frame)",
}


_MAX_DOCUMENT = 16 * 1024 * 1024


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib would follow ftp:// too)."""

    def redirect_request(
        self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> Any:
        if urllib.parse.urlsplit(newurl).scheme.lower() not in ("http", "https"):
            raise CLIError(f"{req.full_url} redirects to {newurl!r}: only http(s) is fetched")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch_spec(url: str) -> dict[str, Any]:
    """An AsyncAPI document from an http(s) URL (JSON or YAML)."""
    from .spec import load_document

    opener = urllib.request.build_opener(_HTTPOnlyRedirects)
    request = urllib.request.Request(url, headers={"Accept": "application/json, application/yaml"})
    try:
        with opener.open(request, timeout=30) as response:
            body = response.read(_MAX_DOCUMENT + 1)
    except urllib.error.HTTPError as exc:
        raise CLIError(f"cannot fetch {url}: HTTP {exc.code}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise CLIError(f"cannot fetch {url}: {reason}") from exc
    if len(body) > _MAX_DOCUMENT:
        raise CLIError(f"{url}: the document is over {_MAX_DOCUMENT} bytes")
    try:
        text = body.decode("utf-8")
        loaded = yaml.safe_load(text)  # YAML is a superset of JSON
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CLIError(f"{url}: not a JSON or YAML document ({exc})") from exc
    if not isinstance(loaded, dict):
        raise CLIError(f"{url}: not an AsyncAPI document (not a mapping)")
    try:
        return load_document(loaded)
    except ValueError as exc:
        raise CLIError(f"{url}: {exc}") from exc


def _codegen_source(spec: str) -> dict[str, Any]:
    """The document named by SPEC: a file, or an http(s) URL; other URL schemes are refused."""
    scheme = urllib.parse.urlsplit(spec).scheme.lower()
    if scheme in ("http", "https"):
        return _fetch_spec(spec)
    if len(scheme) > 1 and not Path(spec).exists():
        raise CLIError(f"{spec}: only files and http(s) URLs are read ({scheme}: is refused)")
    return _load_spec(spec)


def _cmd_codegen(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("asyncws.codegen") is None:
        raise CLIError("client generation (asyncws.codegen) is not available in this installation")
    codegen = importlib.import_module("asyncws.codegen")
    document = _codegen_source(args.spec)
    try:
        client = codegen.describe_any(document, args.name, skip_unsupported=args.skip_unsupported)
        written = codegen.generate(client, args.lang, Path(args.output))
    except codegen.CodegenError as exc:
        raise CLIError(
            "\n  ".join([f"{args.spec}: cannot generate a client:", *exc.problems])
        ) from exc
    for warning in client.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(
        f"wrote the {args.lang} client {client.client_class} to {args.output} "
        f"({len(written)} files, {len(client.warnings)} warnings)",
        file=sys.stderr,
    )
    return 0


def _examples(*lines: str) -> str:
    """The ``--help`` epilog of a command: its examples."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _cmd_run(args: argparse.Namespace) -> int:
    import json

    from .serve import run

    settings = run(
        args.target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        reload=args.reload,
        log_level=args.log_level,
        forwarded_allow_ips=args.forwarded_allow_ips,
        show=args.show,
        ws_max_size=args.ws_max_size,
        limit_concurrency=args.limit_concurrency,
        header_timeout=args.header_timeout,
        timeout_keep_alive=args.timeout_keep_alive,
    )
    if args.show:
        print(json.dumps(settings.uvicorn_kwargs() | settings.environment(), indent=2))
    return 0


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="serve an app with uvicorn, with limits that match the app's",
        description="Serve MODULE:APP (the ASGI app) with uvicorn: --ws-max-size set to the "
        "app's max_frame_size, pongs under backpressure, a deadline for request headers and a "
        "concurrency limit (see asyncws.serve).",
        epilog=_examples(
            "asyncws run examples.chat.app:app --reload",
            "asyncws run examples/chat/app.py:app --host 0.0.0.0 --workers 4",
            "asyncws run myapp:app --show       # the settings, as JSON",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("target", metavar="MODULE:APP", help="the ASGI app; or path/to/app.py:APP")
    run.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    run.add_argument("--port", type=int, default=8000, help="default 8000")
    run.add_argument("--workers", type=int, help="worker processes (default 1)")
    run.add_argument("--reload", action="store_true", help="restart when the code changes")
    run.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"))
    run.add_argument("--forwarded-allow-ips", help="trusted proxies for X-Forwarded-* headers")
    run.add_argument("--ws-max-size", type=int, help="default: the app's max_frame_size")
    run.add_argument("--limit-concurrency", type=int, help="default: max_connections + 10%%")
    run.add_argument("--header-timeout", type=float, help="seconds to send request headers (10)")
    run.add_argument("--timeout-keep-alive", type=int, help="idle HTTP keep-alive seconds (5)")
    run.add_argument("--show", action="store_true", help="print the settings, serve nothing")
    run.set_defaults(run=_cmd_run)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asyncws",
        description="AsyncAPI documents, docs and checks for asyncws apps.",
        epilog=_examples("asyncws spec examples/chat/app.py", "asyncws COMMAND --help"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    spec = commands.add_parser(
        "spec",
        help="write an app's AsyncAPI 3.0 document",
        epilog=_examples(
            "asyncws spec examples.chat.app:app",
            "asyncws spec examples/chat/app.py -o asyncapi.yaml",
            "asyncws spec myapp:ws --server-url wss://api.example.com",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    spec.add_argument("target", metavar="MODULE:APP", help="or a file: path/to/app.py[:APP]")
    spec.add_argument("--format", choices=("json", "yaml"), help="default: from -o, else json")
    spec.add_argument("-o", "--output", metavar="FILE", help="default: standard output")
    spec.add_argument("--server-url", help="server to list (default ws://localhost:8000)")
    spec.add_argument(
        "--asyncapi-version",
        choices=("3.0.0", "3.1.0"),
        help="the document's AsyncAPI version (default: the app's, 3.0.0)",
    )
    spec.set_defaults(run=_cmd_spec)

    docs = commands.add_parser(
        "docs",
        help="write index.html, asyncapi.json and asyncapi.yaml",
        epilog=_examples("asyncws docs examples/chat/app.py -o site/"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    docs.add_argument("target", metavar="MODULE:APP", help="or a file: path/to/app.py[:APP]")
    docs.add_argument("-o", "--output", metavar="DIR", required=True)
    docs.add_argument("--server-url", help="server to list (default ws://localhost:8000)")
    docs.set_defaults(run=_cmd_docs)

    check = commands.add_parser(
        "check",
        help="lint a document; with MODULE:APP, does the app implement it?",
        epilog=_examples(
            "asyncws check specs/chat.asyncapi.yaml",
            "asyncws check specs/chat.asyncapi.yaml examples.chat.app:app",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("spec", metavar="SPEC", help="an AsyncAPI document (.json or .yaml)")
    check.add_argument("target", metavar="MODULE:APP", nargs="?")
    check.set_defaults(run=_cmd_check)

    codegen = commands.add_parser(
        "codegen",
        help="generate a client from a document",
        epilog=_examples(
            "asyncws codegen specs/chat.asyncapi.yaml --lang python -o client/",
            "asyncws codegen http://127.0.0.1:8000/asyncapi.json --lang typescript -o web/",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    codegen.add_argument("spec", metavar="SPEC", help="a document: a file or an http(s) URL")
    codegen.add_argument("--lang", choices=("python", "typescript"), required=True)
    codegen.add_argument("-o", "--output", metavar="DIR", required=True)
    codegen.add_argument(
        "--name", help="base of the class names (chat: ChatClient); default: the title"
    )
    codegen.add_argument(
        "--skip-unsupported",
        action="store_true",
        help="leave out (with a warning each) the operations the client cannot support",
    )
    codegen.set_defaults(run=_cmd_codegen)
    _add_run(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except CLIError as exc:
        print(f"asyncws: {exc}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
