"""Secrets never leave the process: every message, reject line and error lemagen writes goes
through `redact`, which replaces the secrets this run holds (the API key; the user name and
password of a `--base-url`, alone, together and as the `Basic` token they make) and anything
shaped like one: a bearer or basic token, an `sk-` key, the credentials in a URL such as
`http://user:password@host` (a server that echoes the Authorization header back in an error
body, a URL in a log line or an error)."""

from __future__ import annotations

import base64
import re
from urllib.parse import unquote, urlsplit

REDACTED = "[redacted]"
_known: list[str] = []  # longest first: a secret holding another is replaced whole
_SHAPED = re.compile(
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's value
    # A Basic one: base64 with a digit, + / =, or two capitals (so "Basic Arithmetic" stays).
    r"|(\bbasic\s+)(?-i:(?=[A-Za-z]*[0-9+/=]|(?:[a-z]*[A-Z]){2})[A-Za-z0-9+/]{8,}=*)"
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}"  # OpenAI-style keys (sk-..., sk-proj-...)
    r"|(\b(?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{8,}"
    r"|(\b[a-z][a-z0-9+.-]*://)[^\s/?#@\"']+(?=@)"  # a URL's user name and password
)


def remember(secret: str | None) -> None:
    """A secret this run holds (the API key), to be redacted wherever it appears."""
    if secret and len(secret) >= 4 and secret not in _known:
        _known.append(secret)
        _known.sort(key=len, reverse=True)


def remember_url(url: str) -> None:
    """The credentials a base URL carries (`http://user:password@host`): the password, or
    the user name when there is no password (then it is the token); both as written in the
    URL and decoded, as `user:password`, and as the `Basic` token HTTP sends them in. A user
    name beside a password is not remembered alone (it may be a common word): the URL shape
    and the pair still hide it."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if user is None and password is None:
        return
    raw_user, raw_password = user or "", password or ""
    for user, password in ((raw_user, raw_password), (unquote(raw_user), unquote(raw_password))):
        remember(password or user)
        remember(f"{user}:{password}")
        remember(base64.b64encode(f"{user}:{password}".encode()).decode("ascii"))


# Every shape above contains one of these: the full patterns run only on text that does, so
# a line that holds none (nearly every line) costs a few scans (`k-` for sk-/rk-/pk-, `key` for
# api_key/api-key/apikey/x-api-key, `authoriz` for authorization, `@` for a URL's user).
def _may_hold_a_key(text: str) -> bool:
    lower = text.lower()
    return (
        "k-" in lower
        or "key" in lower
        or "bearer" in lower
        or "basic" in lower
        or "authoriz" in lower
        or "@" in lower
    )


def redact(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if not _may_hold_a_key(text):
        return text
    return _SHAPED.sub(lambda m: "".join(g for g in m.groups() if g) + REDACTED, text)
