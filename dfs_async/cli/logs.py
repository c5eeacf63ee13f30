"""The library's log on stderr: warnings, or everything with --debug, never a proxy's password."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .secrets import proxy_secrets, redact

if TYPE_CHECKING:
    from .options import Options
    from .progress import Display

__all__ = ["configure_logging", "logger"]

logger = logging.getLogger("dfs_async")


class _RedactingFormatter(logging.Formatter):
    """A log formatter that takes a proxy's credentials out of each line, traceback included."""

    def __init__(self, fmt: str, secrets: Sequence[str]) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self._secrets)


def configure_logging(options: Options, display: Display) -> logging.Handler:
    """Send the library's log to stderr: warnings, or everything with --debug."""
    handler: logging.Handler
    secrets = proxy_secrets(options.proxy, os.environ)
    if display.console is not None:
        from rich.logging import RichHandler

        handler = RichHandler(console=display.console, show_path=False)
        handler.setFormatter(_RedactingFormatter("%(message)s", secrets))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            _RedactingFormatter(
                "%(asctime)s %(name)s %(levelname)s: %(message)s"
                if options.debug
                else "dfs-async: %(message)s",
                secrets,
            )
        )
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if options.debug else logging.WARNING)
    return handler
