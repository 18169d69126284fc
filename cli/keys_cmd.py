"""`suyuan keys`: create and inspect member key files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.common import console, err_console, print_json
from node.keys import KeyPair, read_passphrase, read_public_info, write_key_file

app = typer.Typer(help="Create and inspect Ed25519 member key files.", no_args_is_help=True)


@app.command("new")
def new(
    name: Annotated[
        str,
        typer.Argument(metavar="NAME", help="Member id the key is for (e.g. farm)."),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Key file to write (default NAME.key).")
    ] = None,
    unencrypted: Annotated[
        bool,
        typer.Option(
            "--unencrypted", help="Store the key in plain text (throwaway test networks only)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create a new Ed25519 key for member NAME, encrypted with a passphrase.

    The passphrase comes from $SUYUAN_PASSPHRASE or a prompt. The file is written 0600.
    """
    key = KeyPair.generate(name)
    path = out or Path(f"{name}.key")
    passphrase = None if unencrypted else read_passphrase(confirm=True)
    write_key_file(path, key, passphrase)
    if unencrypted:
        err_console.print(f"warning: {path} holds an UNENCRYPTED key; use it only for tests")
    if as_json:
        print_json({"name": name, "public_key": key.public_hex, "file": str(path)})
    else:
        console.print(f"{name} {key.public_hex} -> {path}")


@app.command("show")
def show(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Key file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a key file's member name and public key (no passphrase needed)."""
    name, pub = read_public_info(file)
    if as_json:
        print_json({"name": name, "public_key": pub})
    else:
        console.print(f"name:       {name}\npublic key: {pub}")
