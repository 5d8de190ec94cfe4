"""Errors a user can fix. The CLI prints their message on one line and exits 2.

Every message names the bad value and says what to do instead, so nobody has to read a traceback
to find out that a study name had a slash in it.
"""


class AutoPruneError(Exception):
    """Base class: anything raised as this is the user's to fix, not a bug."""


class UnknownNameError(AutoPruneError):
    """A model alias, dataset, sampler, objective, rule or study that does not exist."""


class DataError(AutoPruneError):
    """A dataset that cannot be used: missing column, non-numeric, too short, bad checksum."""


class ModelLoadError(AutoPruneError):
    """A model source that cannot be loaded: not cached offline, no weights, wrong config."""


class SpaceError(AutoPruneError):
    """A search-space file that is malformed or asks for the impossible."""


class StudyError(AutoPruneError):
    """A study that cannot be created, resumed or read as asked."""
