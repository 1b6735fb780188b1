"""Database URLs as production writes them, turned into libpq parameters and masked for display.

Production URLs come from SQLAlchemy/asyncpg configuration (``postgresql+asyncpg://``), from
Supabase's pooler (dotted user names, ``prepared_statement_cache_size=0``) and from Railway. libpq
rejects driver-only query options, so they are dropped here; anything libpq does not know and no
driver is known to use is an error, because a silently ignored typo (``sslmdoe``) is worse.
``pgbouncer=true`` (Prisma's mark of a transaction pooler) is dropped too, but remembered: see
docs/poolers.md.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote

from .errors import UsageError

SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+psycopg2cffi",
    "postgresql+asyncpg",
    "postgresql+pg8000",
}

# Options that drivers and poolers put in URLs but libpq does not accept.
DRIVER_ONLY_OPTIONS = {
    "prepared_statement_cache_size",
    "statement_cache_size",
    "prepared_statement_name_func",
    "pgbouncer",
    "server_settings",
    "command_timeout",
    "max_cached_statement_lifetime",
    "max_cacheable_statement_size",
    "async_fallback",
    "client_encoding_fallback",
    "executemany_mode",
    "executemany_values_page_size",
    "executemany_batch_page_size",
    "use_native_hstore",
    "use_native_unicode",
    "supa",
    "schema",
    "pool_size",
    "pool_timeout",
    "connection_limit",
}

@functools.cache
def libpq_options() -> frozenset[str]:
    """Gives the keywords the linked libpq accepts, as libpq itself lists them (PQconndefaults): a newer libpq
    brings its new options (require_auth, sslnegotiation, …) without a list of ours to keep up."""
    from psycopg import pq

    return frozenset(opt.keyword.decode() for opt in pq.Conninfo.get_defaults())


# asyncpg spells sslmode as ``ssl``.
_ASYNCPG_SSL = {
    "true": "require",
    "false": "disable",
    "disable": "disable",
    "allow": "allow",
    "prefer": "prefer",
    "require": "require",
    "verify-ca": "verify-ca",
    "verify-full": "verify-full",
}

_MASK = "***"


@dataclass(frozen=True)
class ParsedUrl:
    """A database URL split into libpq keyword parameters, with what was dropped on the way."""

    params: dict[str, str]
    dropped: tuple[str, ...] = field(default=())
    pgbouncer: bool = False  # the URL said pgbouncer=true (Prisma's mark of a transaction pooler)

    @property
    def password(self) -> str | None:
        return self.params.get("password")

    def display(self) -> str:
        """Gives a URL for messages and reports: normalised, with the password masked."""
        return build_url(self.params, mask_password=True)


def _split_scheme(url: str) -> tuple[str, str]:
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", url.strip(), re.DOTALL)
    if not match:
        raise UsageError(
            "the database URL is not a URL",
            "use postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        )
    scheme, rest = match.group(1).lower(), match.group(2)
    if scheme not in SCHEMES:
        raise UsageError(
            f"unsupported database URL scheme '{scheme}://'",
            "use postgresql:// (postgres://, postgresql+asyncpg:// and postgresql+psycopg2:// work too)",
        )
    return scheme, rest


def _split_hosts(hostspec: str) -> tuple[str, str]:
    hosts: list[str] = []
    ports: list[str] = []
    for item in hostspec.split(","):
        host, port = item, ""
        if item.startswith("["):
            end = item.find("]")
            if end < 0:
                raise UsageError("the database URL has an unterminated [IPv6] host", "write [::1]:5432")
            host, rest = item[1:end], item[end + 1 :]
            if rest.startswith(":"):
                port = rest[1:]
            elif rest:
                raise UsageError(f"unexpected '{rest}' after the IPv6 host in the database URL")
        elif ":" in item:
            host, port = item.rsplit(":", 1)
        if port and not port.isdigit():
            raise UsageError(
                f"the port '{port}' in the database URL is not a number",
                "write HOST:5432, and URL-encode a password that contains ':' '/' '@' or '#'",
            )
        if port and not 0 < int(port) < 65536:
            raise UsageError(f"the port {port} in the database URL is out of range (1–65535)")
        hosts.append(unquote(host))
        ports.append(port)
    host = ",".join(hosts) if any(hosts) else ""
    port = ",".join(ports) if any(ports) else ""
    return host, port


def parse_url(url: str) -> ParsedUrl:
    """Gives the libpq parameters of a database URL; raises UsageError on a malformed one."""
    if not url or not url.strip():
        raise UsageError("the database URL is empty", "pass --db URL or set DATABASE_URL")
    _scheme, rest = _split_scheme(url)
    rest, _, query = rest.partition("?")
    rest = rest.split("#", 1)[0]
    netloc, _, path = rest.partition("/")
    params: dict[str, str] = {}
    # The user name may contain '.', the password anything: split at the last '@' only.
    if "@" in netloc:
        userinfo, _, hostspec = netloc.rpartition("@")
        user, sep, password = userinfo.partition(":")
        if user:
            params["user"] = unquote(user)
        if sep:
            params["password"] = unquote(password)
    else:
        hostspec = netloc
    host, port = _split_hosts(hostspec) if hostspec else ("", "")
    if host:
        params["host"] = host
    if port:
        params["port"] = port
    if path:
        params["dbname"] = unquote(path)
    dropped: list[str] = []
    pgbouncer = False
    known = libpq_options()
    for key, value in parse_qsl(query, keep_blank_values=True):
        key_l = key.lower()
        if key_l in known:
            params[key_l] = value
        elif key_l == "ssl":
            mode = _ASYNCPG_SSL.get(value.lower())
            if mode is None:
                raise UsageError(f"ssl={value} in the database URL is not an SSL mode", "use sslmode=require")
            params.setdefault("sslmode", mode)
        elif key_l in DRIVER_ONLY_OPTIONS:
            dropped.append(key)
            pgbouncer = pgbouncer or (key_l == "pgbouncer" and value.strip().lower() in {"true", "1", "yes", "on"})
        else:
            raise UsageError(
                f"unknown option '{key}' in the database URL",
                "remove it, or use a libpq option such as sslmode, connect_timeout or options",
            )
    return ParsedUrl(params=params, dropped=tuple(dropped), pgbouncer=pgbouncer)


def build_url(params: dict[str, str], *, mask_password: bool = True) -> str:
    """Gives a postgresql:// URL for libpq parameters (the password masked unless asked otherwise)."""
    from urllib.parse import quote

    userinfo = ""
    if "user" in params:
        userinfo = quote(params["user"], safe=".-_~")
        if params.get("password"):  # an empty password is no secret: leave it out
            secret = _MASK if mask_password else quote(params["password"], safe="")
            userinfo += f":{secret}"
        userinfo += "@"
    host = params.get("host", "")
    query: dict[str, str] = {}
    hostpart = ""
    if host.startswith("/"):
        query["host"] = host
    elif host:
        hosts = host.split(",")
        ports = params.get("port", "").split(",")
        parts = []
        for i, h in enumerate(hosts):
            p = ports[i] if i < len(ports) else ""
            h = f"[{h}]" if ":" in h else h
            parts.append(f"{h}:{p}" if p else h)
        hostpart = ",".join(parts)
    if host.startswith("/") and params.get("port"):
        query["port"] = params["port"]
    for key, value in params.items():
        if key not in {"user", "password", "host", "port", "dbname"}:
            query[key] = _MASK if key in {"sslpassword"} else value
    text = f"postgresql://{userinfo}{hostpart}/{quote(params.get('dbname', ''), safe='')}"
    if query:
        text += "?" + "&".join(f"{k}={quote(v, safe='/')}" for k, v in query.items())
    return text


def conninfo(params: dict[str, str], *, mask_password: bool = True) -> str:
    """Gives the libpq connection string of the parameters (`host=… dbname=…`), for psql and pg_dump.

    Unlike a URL cut at its `?`, it keeps every libpq option a URL carried (a socket directory in
    `?host=`, `sslmode`, `options`) and none of the driver options libpq would refuse (already dropped).
    """
    from psycopg.conninfo import make_conninfo

    shown = {k: v for k, v in params.items() if not (k == "password" and not v)}
    if mask_password and shown.get("password"):
        shown["password"] = "***"
    return make_conninfo(**shown)


def mask_url(url: str) -> str:
    """Gives the URL with its password masked; a URL that cannot be parsed is masked by pattern."""
    try:
        return parse_url(url).display()
    except UsageError:
        return mask_secrets(url)


def mask_secrets(text: str, *secrets: str | None) -> str:
    """Gives text with URL passwords and the given secret strings replaced by ***."""
    text = re.sub(r"(://[^:/@\s]*:)[^\s/]*@", rf"\g<1>{_MASK}@", text)
    text = re.sub(r"(password=)[^\s&]+", rf"\g<1>{_MASK}", text, flags=re.IGNORECASE)
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, _MASK)
    return text
