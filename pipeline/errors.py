"""Exception types shared by the CLI, the bundle intake and the parsers."""

from __future__ import annotations


class ForensicsError(Exception):
    """An error the user can act on; the CLI prints it on one line, no traceback."""

    exit_code = 1


class UsageError(ForensicsError):
    """Bad arguments, unreadable bundle or invalid manifest: exit code 2."""

    exit_code = 2


class ManifestError(UsageError):
    """``bundle.toml`` is malformed: names the key at fault."""


class UnsafeBundle(UsageError):
    """An archive member would escape the extraction folder or is not a plain file."""


class NotThisFormat(Exception):
    """Raised by a parser that finds the input is not its format (detection moves on)."""


class StoreLocked(UsageError):
    """Another kforensics process holds the output directory."""
