"""`digest api-keys add|list|revoke`: keys for the JSON API (/api/v1 in `digest serve`). Registered on the `digest`
app by digest.cli, like cli_ops.py and cli_editions.py."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digest.api_keys import SCOPES, check_name, key_hash, new_key, parse_scopes
from digest.cli_app import _now, _settings, _store, app, out
from digest.errors import DigestError

api_keys_app = typer.Typer(help="Keys for the JSON API (/api/v1 in `digest serve`).\n\n"
                           "Example: digest api-keys add asker-cms --scope subscribers:write", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")

_SCOPE_HELP = "Comma-separated: " + "; ".join(f"{name} ({what})" for name, what in SCOPES.items()) + "."


@api_keys_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="What the key is for, as the log shows it, e.g. asker-cms.")],
    scope: Annotated[str, typer.Option("--scope", help=_SCOPE_HELP)],
) -> None:
    """Make a key and print it once; only its hash is stored, so write it down now.

    Example: digest api-keys add asker-cms --scope subscribers:write,editions:read
    """
    try:
        check_name(name)
        scopes = parse_scopes(scope)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from None
    key = new_key()
    if not _store(_settings()).add_api_key(name, key_hash(key), scopes, now=_now()):
        raise DigestError(f"{name!r} has a key already; `digest api-keys revoke {name}` first, or choose another name")
    # The key alone on stdout, so that a script can take it (`KEY=$(digest api-keys add …)`); the words on stderr.
    print(key)
    typer.echo(f"API key {name!r} with {', '.join(scopes)}. It is shown only now: keep it in the other system's "
               "secrets. Use it as the header 'Authorization: Bearer KEY'.", err=True)


@api_keys_app.command("list")
def list_keys() -> None:
    """The keys (never the keys themselves): name, scopes, made, last used, revoked.

    Example: digest api-keys list
    """
    keys = _store(_settings()).api_keys()
    if not keys:
        out.print("No API keys yet: `digest api-keys add NAME --scope …` makes one.")
        return
    table = Table("name", "scopes", "created", "last used", "revoked", box=None, pad_edge=False)
    for key in keys:
        table.add_row(key.name, ", ".join(key.scopes), key.created_at.strftime("%Y-%m-%d %H:%M"),
                      key.last_used_at.strftime("%Y-%m-%d %H:%M") if key.last_used_at else "never",
                      key.revoked_at.strftime("%Y-%m-%d %H:%M") if key.revoked_at else "")
    out.print(table)


@api_keys_app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The key's name.")]) -> None:
    """Stop a key at once: the next request with it gets 401.

    Example: digest api-keys revoke asker-cms
    """
    if not _store(_settings()).revoke_api_key(name, now=_now()):
        raise DigestError(f"there is no active API key named {name!r} (`digest api-keys list` shows them)")
    out.print(f"API key {name!r} revoked; requests with it now get 401.")
