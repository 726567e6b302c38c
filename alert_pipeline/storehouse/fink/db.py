"""What the build and the load share: the connection, table names, Julian dates.

The database driver is imported when a connection, a DSN or an SQL identifier is first made:
the sub-commands that never reach the database (and the kinds, which read this module's dates)
start without it.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

DEFAULT_TABLE = "events"
DEFAULT_SOURCE = "fink_transients"
MJD_OFFSET = 2400000.5
_J2000_JD = 2451545.0
_J2000 = dt.datetime(2000, 1, 1, 12, tzinfo=dt.UTC)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")


class BuildError(RuntimeError):
    """The build or load cannot run (database unreachable, table missing); the message
    says what to do."""


class TableNameError(BuildError):
    """--table is not a table name (a usage error, not a database one)."""


class ShrinkRefused(BuildError):
    """The source gave far fewer groups than the storehouse holds (a typo in --source or
    --table, an emptied table): the slots were kept."""


def jd_to_datetime(jd: float) -> dt.datetime | None:
    """A Julian date as a UTC datetime; None when it is outside what a datetime holds."""
    try:
        return _J2000 + dt.timedelta(days=jd - _J2000_JD)
    except (OverflowError, ValueError):
        return None


def jd_to_iso(jd: float) -> str:
    """A Julian date as ISO 8601 UTC with milliseconds (the build keeps jd in range)."""
    moment = jd_to_datetime(jd)
    assert moment is not None, jd
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def table_parts(name: str) -> list[str]:
    """``table`` or ``schema.table`` split in its parts; anything else is refused with
    ``TableNameError`` (names are taken as typed: ``Events`` is not ``events``)."""
    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.match(part) for part in parts):
        raise TableNameError(f"invalid table name {name!r}: use TABLE or SCHEMA.TABLE, each a letter or '_' followed "
                         "by letters, digits or '_' (at most 63)")
    return parts


def table_identifier(name: str) -> sql.Identifier:
    """``table`` or ``schema.table`` as a quoted SQL identifier (``table_parts``' rule)."""
    from psycopg import sql

    return sql.Identifier(*table_parts(name))


def safe_dsn(dsn: str) -> str:
    """The DSN without its password, in any form (key=value, URL, a URL whose password
    holds a raw '@'), for messages."""
    if "://" in dsn:
        scheme, rest = dsn.split("://", 1)
        authority_end = len(rest)
        for mark in "/?":
            if mark in rest[rest.rfind("@") + 1:]:
                authority_end = min(authority_end, rest.rfind("@") + 1 + rest[rest.rfind("@") + 1:].index(mark))
        authority, tail = rest[:authority_end], rest[authority_end:]
        if "@" in authority:
            user = authority[: authority.rfind("@")].split(":", 1)[0]
            authority = f"{user}:***@{authority[authority.rfind('@') + 1:]}"
        return mask_secrets_in(f"{scheme}://{authority}{tail}", dsn)
    import psycopg

    try:
        params = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparseable DSN>"
    params.pop("password", None)
    return psycopg.conninfo.make_conninfo(**params)


def dsn_secrets(dsn: str) -> list[str]:
    """Every text of ``dsn`` that may be (part of) its password, longest first."""
    if not dsn.strip():  # no database given: nothing to hide, and no driver to load to know it
        return []
    found = []
    if "://" in dsn:
        rest = dsn.split("://", 1)[1]
        userinfo = rest[: rest.rfind("@")] if "@" in rest else ""
        if ":" in userinfo:
            password = userinfo.split(":", 1)[1]
            found += [password, *password.split("@")]
        found += re.findall(r"[?&]password=([^&]+)", dsn)
    import psycopg

    try:
        found.append(psycopg.conninfo.conninfo_to_dict(dsn).get("password") or "")
    except psycopg.ProgrammingError:
        pass
    return sorted({text for text in found if len(text) >= 2}, key=len, reverse=True)


def mask_secrets_in(text: str, dsn: str) -> str:
    """``text`` with every piece of ``dsn``'s password replaced by ***."""
    for secret in dsn_secrets(dsn):
        text = text.replace(secret, "***")
    return text


def connect(dsn: str) -> psycopg.Connection:
    import psycopg

    try:
        return psycopg.connect(dsn, connect_timeout=10)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BuildError(f"cannot connect to PostgreSQL ({safe_dsn(dsn)}): {mask_secrets_in(first, dsn)}. "
                         "Check --dsn / DATABASE_URL and that the server is running.") from None


def require_table(connection: psycopg.Connection, table: str) -> sql.Identifier:
    """The table's identifier, once it is known to exist."""
    identifier = table_identifier(table)
    if connection.execute("SELECT to_regclass(%s)", (identifier.as_string(connection),)).fetchone()[0] is None:
        hint = ""
        if table != table.lower() and connection.execute("SELECT to_regclass(%s)", (
                table_identifier(table.lower()).as_string(connection),)).fetchone()[0] is not None:
            hint = f" (names are case-sensitive here: did you mean {table.lower()!r}?)"
        raise BuildError(f"table {table!r} does not exist in this database{hint}: create and fill it with "
                         "'transient_kind_builder.py load-fink'.")
    return identifier


def json_guard(connection: psycopg.Connection, column: sql.Composable) -> sql.Composable:
    """SQL telling whether ``column`` holds text jsonb accepts, without raising.

    A PL/pgSQL guard rather than ``pg_input_is_valid``: that one still raises on text
    nested beyond PostgreSQL's stack depth, which this catches like any other error."""
    from psycopg import sql

    connection.execute("""
        CREATE OR REPLACE FUNCTION pg_temp.tk_is_json(value text) RETURNS boolean
        LANGUAGE plpgsql IMMUTABLE AS $$
        BEGIN PERFORM value::jsonb; RETURN true; EXCEPTION WHEN others THEN RETURN false; END $$""")
    return sql.SQL("pg_temp.tk_is_json({})").format(column)
