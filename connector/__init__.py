"""ds-connector: mirror Démarches-Simplifiées démarches into SQLite and act on them safely."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ds-connector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
