"""Credentials in parameters, sources and queries: found and refused before anything records them.

Notebook parameters and command lines end up in rendered reports and shell histories, so a
password, token or key is refused wherever it sits (a URL, a ``name=value`` text, a mapping's key
or value). Kept apart from the readers so that checking a report's parameters imports no data
library (the process that runs the notebooks stays small).
"""

from __future__ import annotations

import re

from ltv_helpers.schema import LTVError


#: A name (a mapping key, a URL query key, the left side of ``name=value``) holds a secret when
#: one of its words is one of these (``db_password``, ``X-Amz-Security-Token``, ``MYSQL_PWD``),
#: when two of its words make one (``api_key``, ``AWS_SECRET_ACCESS_KEY``), or when it ends in one
#: of them written together (``PGPASSWORD``, ``apitoken``). A last word that describes the secret
#: rather than holding it (``token_count``, ``key_id``, ``password_column``) does not count.
_SECRET_WORDS = {"password", "passwd", "passphrase", "pass", "pwd", "pw", "secret", "token", "apikey",
                 "credential", "credentials", "signature"}
_SECRET_PAIRS = {("api", "key"), ("access", "key"), ("private", "key"), ("account", "key"), ("client", "key")}
_SECRET_ENDINGS = ("password", "passwd", "passphrase", "pwd", "token", "secret", "apikey")
_NOT_THE_SECRET = {"count", "type", "id", "name", "url", "uri", "endpoint", "file", "path", "length", "expiry",
                   "expires", "limit", "mode", "method", "plugin", "source", "mechanism", "column", "col", "field",
                   "reset", "policy", "hint", "len", "size"}
#: In a URL's query a bare ``key`` or ``sig`` is the secret itself (API keys, signed URLs).
_QUERY_SECRETS = {"key", "sig", "sas"}
#: ``name=value`` without spaces (libpq, URL queries, environment lines; not ``table.column=``),
#: and quoted JSON keys.
_NAME_VALUE = re.compile(r"(?<![\w.])([A-Za-z_][\w-]*)=(?=[^\s&;,'\"=])"
                         r"|[\"']([^\"']{1,64})[\"']\s*:\s*[\"']?(?=[^\s\"',}\]])")
#: Secrets that come without a name: an HTTP bearer token, a DuckDB ``CREATE SECRET``.
_BARE_SECRET = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{12,}|\bcreate\s+(?:or\s+replace\s+)?"
                          r"(?:persistent\s+|temporary\s+)?secret\b")


def _secret_name(name: str, query: bool = False) -> bool:
    """Whether ``name`` names a secret (see :data:`_SECRET_WORDS`); ``query``: a URL query key."""
    words = re.findall(r"[a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower())
    if not words or words[-1] in _NOT_THE_SECRET:
        return False
    if words[0] in ("ssl", "tls") and words[-1] in ("key", "cert"):
        return False  # a certificate's key file (sslkey=/path/client.key)
    if any(w in _SECRET_WORDS for w in words) or any(pair in _SECRET_PAIRS for pair in zip(words, words[1:])):
        return True
    if query and any(w in _QUERY_SECRETS for w in words):
        return True
    return "".join(words).endswith(_SECRET_ENDINGS)


#: A URL with a user part inside a longer text (a DSN in a query, a value in a JSON parameter).
_EMBEDDED_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s\"'<>]+")


def _url_secret(text: str) -> str | None:
    """``"password"`` or the secret query key if ``text`` is a URL carrying a credential, as
    SQLAlchemy parses it (a password may hold ``/ # ?`` or spaces); else None."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from urllib.parse import parse_qsl, urlsplit

    try:
        url = make_url(text.strip())
    except (ArgumentError, ValueError, TypeError):
        # Not a database URL (https://..., a file URI): a user:password@ part still counts.
        if re.search(r"://[^/?#@\s]*:[^@\s]+@", text):
            return "password"
        pairs = parse_qsl(urlsplit(text.strip()).query)
        return next((k.lower() for k, v in pairs if v and _secret_name(k, query=True)), None)
    if url.password:
        return "password"
    for key, value in url.query.items():
        if _secret_name(key, query=True) and value:
            return key.lower()
    return None


def _credential(value, _seen: set | None = None) -> str | None:
    """The kind of credential ``value`` carries (``"password"``, ``"token"`` ...), or None;
    strings, and every key and value of mappings, lists and tuples, to any depth (each container
    once, so a structure that contains itself ends)."""
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        _seen = set() if _seen is None else _seen
        if id(value) in _seen:
            return None
        _seen.add(id(value))
    if isinstance(value, str):
        if "://" in value:
            found = _url_secret(value)
            if found is None:
                found = next((k for k in map(_url_secret, _EMBEDDED_URL.findall(value)) if k), None)
            if found:
                return found
        for match in _NAME_VALUE.finditer(value):
            name = match.group(1) or match.group(2)
            if _secret_name(name):
                return name.strip().lower()
        bare = _BARE_SECRET.search(value)
        return bare.group(0).split()[0].lower() if bare else None
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and _secret_name(key) and item not in (None, ""):
                return key.strip().lower()
            found = _credential(key, _seen) or _credential(item, _seen)
            if found:
                return found
        return None
    if isinstance(value, (list, tuple, set, frozenset)):
        return next((k for k in (_credential(v, _seen) for v in value) if k), None)
    return None


def refuse_credentials(value, what: str = "source", password_env: str = "LTV_DB_PASSWORD") -> None:
    """Raise :class:`LTVError` if ``value`` carries a credential; the message never repeats it.

    A credential is a password in a URL (``postgresql://ana:secret@host/db``, decided by
    SQLAlchemy's URL parser, so ``Xy7/Secret#9`` counts too), a secret URL query key
    (``?token=...``) or a ``password=``/``token=``/``api_key=``-style parameter, in a string or
    anywhere inside a mapping or list (a key named ``password`` with a value counts).
    Notebook parameters and command lines are recorded in rendered reports and shell histories,
    so secrets come from environment variables instead. Numbers and None pass.

    >>> refuse_credentials("postgresql://analyst@db.internal/shop")
    >>> refuse_credentials({"extra": ["postgresql://analyst:pw@db.internal/shop"]})
    Traceback (most recent call last):
    ...
    ltv_helpers.schema.LTVError: The source contains a password: remove it and set the LTV_DB_PASSWORD ...
    """
    found = _credential(value)
    if found == "password":
        raise LTVError(f"The {what} contains a password: remove it and set the {password_env} "
                       "environment variable instead (notebook parameters are recorded in rendered "
                       "reports).")
    if found:
        raise LTVError(f"The {what} contains a {found}= credential: remove it and pass "
                       f"secrets through environment variables (database password: {password_env}); "
                       "notebook parameters are recorded in rendered reports.")
