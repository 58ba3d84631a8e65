"""``gardien redact``: redact files or standard input, line by line, to standard output or a file."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, TextIO

import typer

from gardien.privacy.detect import DEFAULT_KEY_NAMES, ENTITIES, Scanner
from gardien.privacy.errors import OperatorError
from gardien.privacy.redact import STYLES, Redactor


def _pairs(items: Iterable[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise typer.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=what)
        pairs[name] = value
    return pairs


def _lines(paths: list[Path], stack: ExitStack) -> Iterator[str]:
    if not paths:
        yield from sys.stdin
        return
    for path in paths:
        if str(path) == "-":
            yield from sys.stdin
            continue
        yield from stack.enter_context(path.open(encoding="utf-8", errors="surrogateescape", newline=""))


def redact(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="files to redact; none or '-' reads standard input")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of standard output")] = None,
    style: Annotated[
        str, typer.Option(help=f"replacement: {', '.join(s for s in STYLES if s != 'pseudonym')}")
    ] = "tag",
    entity: Annotated[
        list[str] | None, typer.Option("--entity", "-e", help=f"only these types (repeatable): {', '.join(ENTITIES)}")
    ] = None,
    key: Annotated[
        list[str] | None,
        typer.Option("--key", help="another structured-log field whose value to redact, NAME=TYPE (repeatable)"),
    ] = None,
    no_default_keys: Annotated[bool, typer.Option(help="do not redact values of the default field names")] = False,
    pattern: Annotated[
        list[str] | None, typer.Option("--pattern", "-p", help="a custom type, NAME=REGEX (repeatable)")
    ] = None,
    stats: Annotated[bool, typer.Option(help="print counts per type to standard error")] = False,
) -> None:
    """Redact personal data from log files or standard input."""
    if style not in ("tag", "mask"):
        raise typer.BadParameter("choose tag or mask (the pseudonym style needs the keyring: use the library)")
    key_names = {} if no_default_keys else dict(DEFAULT_KEY_NAMES)
    key_names.update(_pairs(key or [], "--key"))
    try:
        scanner = Scanner(entities=entity or None, key_names=key_names, custom=_pairs(pattern or [], "--pattern"))
    except OperatorError as exc:
        raise typer.BadParameter(str(exc)) from None
    redactor = Redactor(scanner, style="mask" if style == "mask" else "tag")
    counts: Counter[str] = Counter()
    with ExitStack() as stack:
        sink: TextIO = (
            stack.enter_context(output.open("w", encoding="utf-8", errors="surrogateescape", newline=""))
            if output
            else sys.stdout
        )
        try:
            for line in _lines(paths or [], stack):
                text, findings = redactor.redact_with_findings(line)
                sink.write(text)
                counts.update(f.entity for f in findings)
        except OSError as exc:
            typer.secho(str(exc), fg=typer.colors.RED, err=True)
            raise typer.Exit(1) from None
    if stats:
        for name, count in sorted(counts.items()):
            typer.echo(f"{name}\t{count}", err=True)
