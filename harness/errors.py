"""Errors a user can act on. The CLI prints them as one line, without a traceback."""


class CxrbenchError(Exception):
    """Base class: the message says what was wrong and what to do."""


class ConfigError(CxrbenchError):
    """A benchmark spec or plugin option is invalid (names the file and the key path)."""


class PluginError(CxrbenchError):
    """A plugin is unknown, duplicated, failed to import or broke its contract."""


class DatasetError(CxrbenchError):
    """A dataset is missing, malformed or unreadable (names the file or column)."""


class LeakageError(CxrbenchError):
    """A test patient appears in data a generator or classifier is trained on."""
