"""Secrets never leave the process: every message, reject line and error lemagen writes goes
through `redact`, which replaces the API keys this run holds and anything shaped like a bearer
token or an `sk-` key (a server that echoes the Authorization header back in an error body)."""

from __future__ import annotations

import re

REDACTED = "[redacted]"
_known: set[str] = set()
_SHAPED = re.compile(
    r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"  # an Authorization header's value
    r"|\b(?:sk|rk|pk)-[A-Za-z0-9_-]{8,}"  # OpenAI-style keys (sk-..., sk-proj-...)
    r"|(\b(?:api[_-]?key|x-api-key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]{8,}"
)


def remember(secret: str | None) -> None:
    """A secret this run holds (the API key), to be redacted wherever it appears."""
    if secret and len(secret) >= 4:
        _known.add(secret)


# Every shape above contains one of these: the full patterns run only on text that does, so
# a line that holds none (nearly every line) costs a few scans (`k-` for sk-/rk-/pk-, `key` for
# api_key/api-key/apikey/x-api-key, `authoriz` for authorization).
def _may_hold_a_key(text: str) -> bool:
    lower = text.lower()
    return "k-" in lower or "key" in lower or "bearer" in lower or "authoriz" in lower


def redact(text: str) -> str:
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if not _may_hold_a_key(text):
        return text
    return _SHAPED.sub(lambda m: (m.group(1) or m.group(2) or "") + REDACTED, text)
