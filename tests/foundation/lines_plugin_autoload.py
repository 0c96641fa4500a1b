"""Plugin entry for subprocesses: ``KFORENSICS_PLUGINS=tests.foundation.lines_plugin_autoload``."""

from tests.foundation.lines_plugin import install

install()
