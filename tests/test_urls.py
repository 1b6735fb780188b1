"""URL forms production uses, parsed into libpq parameters and masked for display."""

from __future__ import annotations

import pytest

from mita_integrity.database.errors import UsageError
from mita_integrity.database.urls import build_url, mask_secrets, mask_url, parse_url

SUPABASE = (
    "postgresql://postgres.atdcxppfflmiwjwjuqyl:p%40ss%3Aw0rd%25x@aws-0-us-east-2.pooler.supabase.com:5432/"
    "postgres?prepared_statement_cache_size=0"
)


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg2",
                                    "postgresql+psycopg", "POSTGRESQL"])
def test_schemes_production_uses_are_accepted(scheme: str) -> None:
    parsed = parse_url(f"{scheme}://u:pw@db.example:6543/mita")
    assert parsed.params == {"user": "u", "password": "pw", "host": "db.example", "port": "6543", "dbname": "mita"}


def test_supabase_pooler_url_keeps_dotted_user_and_decodes_password_once() -> None:
    parsed = parse_url(SUPABASE)
    assert parsed.params["user"] == "postgres.atdcxppfflmiwjwjuqyl"
    # %40 -> @, %3A -> :, %25 -> % ; decoded exactly once ("%25x" must not become a second escape).
    assert parsed.params["password"] == "p@ss:w0rd%x"
    assert parsed.params["host"] == "aws-0-us-east-2.pooler.supabase.com"
    assert "prepared_statement_cache_size" not in parsed.params
    assert parsed.dropped == ("prepared_statement_cache_size",)


@pytest.mark.parametrize("option", ["prepared_statement_cache_size=0", "statement_cache_size=0", "pgbouncer=true",
                                    "command_timeout=60"])
def test_driver_only_options_are_dropped(option: str) -> None:
    parsed = parse_url(f"postgresql://u@h/db?{option}&sslmode=require")
    assert parsed.params == {"user": "u", "host": "h", "dbname": "db", "sslmode": "require"}


def test_sslmode_is_respected_but_never_forced() -> None:
    assert "sslmode" not in parse_url("postgresql://u@h/db").params
    assert parse_url("postgresql://u@h/db?sslmode=disable").params["sslmode"] == "disable"
    assert parse_url("postgresql+asyncpg://u@h/db?ssl=true").params["sslmode"] == "require"


def test_unknown_option_is_an_error_not_silently_ignored() -> None:
    with pytest.raises(UsageError, match="sslmdoe"):
        parse_url("postgresql://u@h/db?sslmdoe=require")


def test_the_options_are_the_linked_libpqs_own() -> None:
    """libpq's list (PQconndefaults), not one of ours: each option it lists passes, and the result is a
    connection string libpq parses back (PQconninfoParse) to the same keywords."""
    from psycopg import pq
    from psycopg.conninfo import conninfo_to_dict

    from mita_integrity.database.urls import conninfo

    listed = {opt.keyword.decode() for opt in pq.Conninfo.get_defaults()}
    assert {"sslmode", "connect_timeout", "options", "target_session_attrs"} <= listed
    skip = {"host", "hostaddr", "port", "user", "password", "dbname", "service", "passfile", "replication"}
    query = "&".join(f"{key}=1" for key in sorted(listed - skip))
    params = parse_url(f"postgresql://u@h/db?{query}").params
    assert set(params) == (listed - skip) | {"user", "host", "dbname"}
    assert set(conninfo_to_dict(conninfo(params))) == set(params)


def test_unix_socket_and_ipv6_and_multi_host() -> None:
    assert parse_url("postgresql://postgres:@/postgres?host=/tmp/pg").params == {
        "user": "postgres", "password": "", "dbname": "postgres", "host": "/tmp/pg"}
    assert parse_url("postgresql://u@[::1]:5433/d").params["host"] == "::1"
    multi = parse_url("postgresql://u@a:5432,b:5433/d?target_session_attrs=read-write").params
    assert (multi["host"], multi["port"]) == ("a,b", "5432,5433")


@pytest.mark.parametrize("bad,fragment", [
    ("", "empty"),
    ("localhost:5432/db", "not a URL"),
    ("mysql://u@h/db", "scheme"),
    ("postgresql://u@h:notaport/db", "port"),
    ("postgresql://u@h:99999/db", "out of range"),
    ("postgresql://u@[::1/db", "IPv6"),
    ("postgresql://u@h/db?ssl=maybe", "SSL mode"),
])
def test_malformed_urls_say_what_is_wrong(bad: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_url(bad)


def test_display_masks_the_password_everywhere() -> None:
    shown = parse_url(SUPABASE).display()
    assert "p@ss" not in shown and "w0rd" not in shown and "%40" not in shown
    assert shown.startswith("postgresql://postgres.atdcxppfflmiwjwjuqyl:***@aws-0-us-east-2")
    assert "secret" not in mask_url("postgresql://u:secret@h:1/x")
    assert "secret" not in mask_url("not a url but has postgresql://u:secret@h")
    assert mask_secrets("failed for hunter22 at host", "hunter22") == "failed for *** at host"
    assert "pw123" not in mask_secrets("host=h password=pw123 dbname=x")


def test_build_url_round_trips_with_the_real_password() -> None:
    parsed = parse_url(SUPABASE)
    again = parse_url(build_url(parsed.params, mask_password=False))
    assert again.params == parsed.params
