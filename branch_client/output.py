"""What the CLI sets up for its process before any command: text output and TLS trust.

Text: how the CLI's text reaches a console, a pipe or a file, whatever the PC's code page.

Product names are Bangla. Python writes to a pipe or a file in the locale's encoding
(cp1252 or another ANSI code page on Windows, ISO-8859-1 on an old Linux locale), which
cannot encode Bangla: a `catalog search` piped into a support script, or the scheduled
task's redirected output, would end in UnicodeEncodeError. So:

- a pipe or a file gets UTF-8, the encoding every reader can be told to expect (what the
  one-file executable's UTF-8 mode does too, `X utf8=1` in packaging/exe/branchsync.spec);
- a terminal keeps the encoding it declares, with unencodable characters replaced rather
  than raising. The Windows console is not affected: Python writes to it as UTF-16
  (io._WindowsConsoleIO), so Bangla reaches it intact whatever the code page.
"""

import codecs
import sys

# Replaced characters in a terminal show where text was lost; an error would stop the command.
TERMINAL_ERRORS = "replace"
PIPE_ERRORS = "strict"  # UTF-8 encodes every str that is not a lone surrogate


def _is_utf8(encoding: str | None) -> bool:
    try:
        return codecs.lookup(encoding or "").name == "utf-8"
    except LookupError:
        return False


def plan(encoding: str | None, is_terminal: bool) -> dict | None:
    """The `reconfigure` arguments a stream with this encoding needs, or None when it is fine as is."""
    if _is_utf8(encoding):
        return None
    if is_terminal:
        return {"errors": TERMINAL_ERRORS}
    return {"encoding": "utf-8", "errors": PIPE_ERRORS}


def make_text_safe(streams=None) -> None:
    """Reconfigure stdout and stderr (or `streams`) so that no text can fail to be written."""
    for stream in streams if streams is not None else (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None:  # replaced by a test harness or an embedding program: leave it
            continue
        try:
            terminal = stream.isatty()
        except (OSError, ValueError):
            terminal = False
        change = plan(getattr(stream, "encoding", None), terminal)
        if change:
            reconfigure(**change)


def use_system_trust() -> None:
    """Make every TLS client of this process (the Azure SDK's requests too) use the OS trust store.

    For the program's entry point only, as the truststore documentation advises: it replaces
    ssl.SSLContext process-wide. httpx gets `cloud_client.tls_context()` explicitly anyway.
    """
    try:
        import truststore
    except ImportError:  # pragma: no cover - a dependency; certifi's bundle stays in use
        return
    truststore.inject_into_ssl()
