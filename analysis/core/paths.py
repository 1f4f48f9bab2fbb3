"""Data-root confinement for a dashboard shared by a team: every path a user types resolves under the roots the
operator configured, and "Send test alert" only reaches allowed hosts.

Streamlit has no authentication, so whoever can open the dashboard's port can type any path into the sidebar (read
any image the server can, probe which files exist) and make the server send a test alert to any URL. The operator
sets the roots when starting the server, in the environment, never in the YAML config (a config can be loaded from
the sidebar, so the user it confines could otherwise widen it):

    EXPERIMENT_ANALYZER_DATA_ROOTS=/srv/runs:/srv/datasets   (os.pathsep-separated; unset or empty = off)
    EXPERIMENT_ANALYZER_ALLOWED_HOSTS=hooks.slack.com,smtp.example.com   (only read while confinement is on)

`confine` decides containment on the fully resolved path (`~` expanded, `..` and every symlink followed) before
anything is read, and its error is the same whether or not the path exists: no file-existence oracle.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from analysis.core.errors import AnalyzerError

__all__ = [
    "DEFAULT_ALLOWED_HOSTS",
    "ENV_ALLOWED_HOSTS",
    "ENV_DATA_ROOTS",
    "HostNotAllowed",
    "PathOutsideRoots",
    "allowed_hosts",
    "check_host",
    "confine",
    "data_roots",
]

ENV_DATA_ROOTS = "EXPERIMENT_ANALYZER_DATA_ROOTS"
ENV_ALLOWED_HOSTS = "EXPERIMENT_ANALYZER_ALLOWED_HOSTS"
DEFAULT_ALLOWED_HOSTS = ("hooks.slack.com",)


class PathOutsideRoots(AnalyzerError):
    """A path typed by the user resolves outside the configured data roots."""


class HostNotAllowed(AnalyzerError):
    """An alert destination (webhook or SMTP host) is not in the allow-list while confinement is on."""


def _resolve(path: str | os.PathLike[str]) -> Path:
    """`~` expanded, relative paths taken from the working directory, `..` and symlinks followed (the path need
    not exist)."""
    try:
        return Path(path).expanduser().resolve(strict=False)
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loop, NUL byte, unknown user in `~user`
        raise PathOutsideRoots(f"Cannot resolve the path {str(path)!r}: {exc}") from None


def data_roots(environ: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """The configured roots, resolved (empty when confinement is off)."""
    raw = (os.environ if environ is None else environ).get(ENV_DATA_ROOTS, "")
    return tuple(_resolve(part.strip()) for part in raw.split(os.pathsep) if part.strip())


def confine(path: str | os.PathLike[str], roots: Iterable[Path] | None = None) -> Path:
    """`path` resolved, or `PathOutsideRoots` when it lies outside every root. `roots=None` reads the environment;
    with no roots (confinement off) the path is only `~`-expanded, as before."""
    chosen = data_roots() if roots is None else tuple(_resolve(r) for r in roots)
    if not chosen:
        return Path(path).expanduser()
    resolved = _resolve(path)
    if any(resolved == root or resolved.is_relative_to(root) for root in chosen):
        return resolved
    names = ", ".join(str(r) for r in chosen)
    raise PathOutsideRoots(f"{str(path)!r} is outside the allowed data roots ({names}); ask the operator to add it.")


def allowed_hosts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """Hosts alerts may be sent to while confinement is on (default: Slack's webhook host)."""
    raw = (os.environ if environ is None else environ).get(ENV_ALLOWED_HOSTS, "")
    hosts = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    return hosts or DEFAULT_ALLOWED_HOSTS


def check_host(destination: str, hosts: Iterable[str]) -> None:
    """Raise `HostNotAllowed` unless `destination` (a URL or a bare host name) names an allowed host exactly.
    The message names the host only: a webhook's path and query are secrets."""
    text = destination.strip()
    try:
        host = (urlsplit(text).hostname if "//" in text else text.split(":")[0]) or ""
    except ValueError:  # e.g. an invalid IPv6 literal
        host = ""
    host = host.lower().rstrip(".")
    allowed = {h.lower().rstrip(".") for h in hosts}
    if not host or host not in allowed:
        shown = host or "(no host)"
        raise HostNotAllowed(
            f"Alert destination host {shown!r} is not allowed on this server (allowed: {', '.join(sorted(allowed))})."
        )
