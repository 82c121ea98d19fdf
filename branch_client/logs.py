"""The branch's log file: `logs/branchsync.log` in the data home, rotating.

One line per sync with its figures (pages and entries pulled, sales and messages pushed,
applied_through, pending, duration) and one line per error with its reason. At most
LOG_BYTES per file and LOG_BACKUPS old files (branchsync.log.1 ... .5), so the log never
fills the disk. Never secrets: the branch secret is never handed to the log, and anything
that looks like a SAS signature (`sig=...`) or a signature header is masked on the way out.

A log that cannot be written (a full disk, a file held by another process while it
rotates on Windows) never breaks a command: the line is dropped.
"""

import logging
import re
import time
from logging.handlers import RotatingFileHandler
from pathlib import Path

LOGGER_NAME = "branchsync"
LOG_DIR = "logs"
LOG_FILE = "branchsync.log"
LOG_BYTES = 2 * 1024 * 1024
LOG_BACKUPS = 5

_SECRETS = [
    (re.compile(r"(?i)\b(sig|signature|secret|x-branchsync-signature)=([^&\s;,'\"]+)"), r"\1=***"),
    (re.compile(r"(?i)\b(sig|signature|secret)(\"?\s*[:=]\s*\"?)([^\s&;,'\"]+)"), r"\1\2***"),
]


def log_path(home: Path) -> Path:
    return Path(home) / LOG_DIR / LOG_FILE


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with known secrets and anything that looks like a signature masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _Redacting(logging.Filter):
    def __init__(self):
        super().__init__()
        self.secrets: tuple[str, ...] = ()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self.secrets)
        record.args = None
        return True


class _QuietRotatingFileHandler(RotatingFileHandler):
    """Rotates like its parent; a failed rotation (file in use on Windows) keeps appending instead."""

    def doRollover(self) -> None:
        try:
            super().doRollover()
        except OSError:
            if self.stream is None:
                self.stream = self._open()

    def handleError(self, record: logging.LogRecord) -> None:  # a log problem never breaks a command
        pass


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record, datefmt=None):  # noqa: N802 (logging's name)
        return time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created)) + f".{int(record.msecs):03d}Z"


def open_log(home: Path, *, max_bytes: int = LOG_BYTES, backups: int = LOG_BACKUPS) -> logging.Logger:
    """The branch logger writing to `logs/branchsync.log` in `home` (replacing any earlier home's file)."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    for old in list(logger.filters):
        logger.removeFilter(old)
    logger.addFilter(_Redacting())
    path = log_path(home)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = _QuietRotatingFileHandler(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8",
                                            delay=True)
    except OSError:
        logger.addHandler(logging.NullHandler())
        return logger
    handler.setFormatter(_UtcFormatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def forget_secret(logger: logging.Logger, secret: str | None) -> None:
    """Mask `secret` in every line this logger writes from now on."""
    for f in logger.filters:
        if isinstance(f, _Redacting) and secret:
            f.secrets = (*f.secrets, secret)


def close_log() -> None:
    logger = logging.getLogger(LOGGER_NAME)
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()


def sync_line(report, seconds: float) -> str:
    """The one line a successful sync leaves in the log (`report` is a sync.SyncReport)."""
    return (f"sync ok: pulled {report.entries} catalog entries in {report.pages} pages "
            f"(catalog version {report.catalog_version}{', full resync' if report.full_resync else ''}), "
            f"pushed {report.pushed} sales in {report.messages} messages, "
            f"applied_through {report.applied_through}, pending {report.pending}, duration {seconds:.2f}s")


def error_line(command: str, reason: str, code: str, seconds: float) -> str:
    return f"{command} failed after {seconds:.2f}s: [{code}] {' '.join(reason.split())}"
