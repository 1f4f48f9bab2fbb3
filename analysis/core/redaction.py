"""The one redaction of secrets, used by the reports, the monitor's alerts and logs, and the dashboard.

A value is a secret when its key names one (`password`, `api_key`, `access_token`, `slack_webhook`, ... matched
on whole words, so `tokenizer: bert-base` and `max_tokens: 512` stay) or when the value itself has the shape
of one, whatever its key: a password inside a URL (`postgres://user:PW@host/db`), a token-like query
parameter (`?token=...`, `&key=...`), a webhook URL (Slack, Discord, ...), or a known token format (Slack
`xox?-`, GitHub `ghp_`, AWS `AKIA`, OpenAI `sk-`, Hugging Face `hf_`, Google `AIza`, GitLab `glpat-`, JWTs,
`Bearer ...`, PEM private keys). Shapes replace only the secret part, so a redacted URL still says which host
it points at.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["MAX_DEPTH", "REDACTED", "is_secret_key", "redact", "redact_text", "redact_url"]

REDACTED = "<redacted>"
MAX_DEPTH = 100

# whole words (after splitting on non-letters and camelCase) that make a key a secret's name ...
_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "apikey",
        "credential",
        "credentials",
        "auth",
        "authorization",
        "webhook",
        "cookie",
        "signature",
        "dsn",
    }
)
# ... and pairs of adjacent words that do (`api_key`, `private-key`, `accessKey`)
_SECRET_PAIRS = frozenset({"apikey", "privatekey", "accesskey", "secretkey", "signingkey", "clientsecret"})
_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")

# value shapes: (pattern, replacement)
_QUERY_SECRET = (
    r"(?:access_?token|token|key|api_?key|apikey|secret|sig|signature|password|passwd|pwd|auth|code|"
    r"client_secret|x-amz-signature|x-goog-signature)"
)
_SHAPES: list[tuple[re.Pattern[str], str]] = [
    # PEM private keys, whole
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)", re.S), REDACTED),
    # webhook URLs: the path is the secret (Slack, Discord, Teams/Office, Mattermost, Google Chat spaces)
    (
        re.compile(
            r"(?i)\b(https?://(?:hooks\.slack\.com|(?:[\w-]+\.)?discord(?:app)?\.com/api/webhooks|[\w.-]*webhook\.office"
            r"\.com|[\w.-]+/hooks|chat\.googleapis\.com/v1/spaces))(/[^\s\"'<>]*)?"
        ),
        r"\1/" + REDACTED,
    ),
    # user:password@ in any URL
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@\"'<>]*):[^@\s/\"'<>]+@"), r"\1:" + REDACTED + "@"),
    # token-like query parameters
    (re.compile(r"(?i)([?&;]" + _QUERY_SECRET + r"=)[^&#\s\"'<>]+"), r"\1" + REDACTED),
    # known token formats
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bxapp-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{30,}"), REDACTED),
    (re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}"), REDACTED),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,}"), REDACTED),
    (re.compile(r"\bhf_[A-Za-z0-9]{30,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+"), REDACTED),  # JWT
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/-]{16,}=*"), r"\1 " + REDACTED),
]


def is_secret_key(key: object) -> bool:
    """Whether a config / summary key names a secret (whole words: `api_key` yes, `max_tokens` no)."""
    words = [w.lower() for w in _WORD.findall(str(key))]
    if any(w in _SECRET_WORDS for w in words):
        return True
    return any(a + b in _SECRET_PAIRS for a, b in itertools.pairwise(words)) or "".join(words) in _SECRET_PAIRS


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every secret-shaped part replaced, and every string of `secrets` (e.g. a configured webhook
    URL) removed together with its pieces: the URL's path and query, each query value, and the long path
    segments, also percent-decoded (a library may print the URL re-encoded or only its path)."""
    for secret in secrets:
        for piece in _pieces(secret):
            text = text.replace(piece, REDACTED)
    for pattern, repl in _SHAPES:
        text = pattern.sub(repl, text)
    return text


def _pieces(secret: str) -> list[str]:
    """The strings to remove for one secret, longest first (so a piece never leaves part of a longer one)."""
    if not secret:
        return []
    out = {secret, unquote(secret)}
    try:
        parts = urlsplit(secret)
    except ValueError:
        parts = None
    if parts is not None and parts.scheme and parts.netloc:
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        for piece in (tail, parts.path, parts.query, *parts.path.split("/"), *re.split(r"[&;=]", parts.query)):
            if len(piece) >= 4 and piece != "/":
                out.update({piece, unquote(piece), quote(unquote(piece), safe="/?&=;:@+,$!~*'()")})
        if parts.password:
            out.add(parts.password)
    return sorted((p for p in out if len(p) >= 4), key=len, reverse=True)


def redact_url(url: str) -> str:
    """A URL safe to show: its scheme and host only (`https://hooks.slack.com/<redacted>`)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return REDACTED
    if not parts.scheme or not host:
        return REDACTED
    return f"{parts.scheme}://{host}{port}/{REDACTED}" if (parts.path.strip("/") or parts.query) else url


def redact(data: Any, _depth: int = 0) -> Any:
    """A copy of nested config / summary data (dicts, lists, strings) with secrets replaced: whole values
    under secret keys, secret-shaped parts of any other string (see the module docstring). Parts nested
    deeper than `MAX_DEPTH` are replaced too (nothing that deep is worth a RecursionError)."""
    if _depth > MAX_DEPTH and isinstance(data, (dict, list, tuple)):
        return REDACTED
    if isinstance(data, dict):
        return {
            k: (REDACTED if is_secret_key(k) and v not in (None, "") else redact(v, _depth + 1))
            for k, v in data.items()
        }
    if isinstance(data, (list, tuple)):
        return type(data)(redact(v, _depth + 1) for v in data)
    if isinstance(data, str):
        return redact_text(data)
    return data
