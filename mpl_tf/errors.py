"""The one exception type that means "the user asked for something invalid"."""


class ConfigError(ValueError):
    """Bad flag value, file or path. The message names it and says what to do.

    `main` prints it as one line and exits with status 2 before doing any work.
    """


class StorageError(OSError):
    """A checkpoint or an export could not be written (a full disk, a lost
    mount). The message says what is intact and what to do; `main` prints
    it as one line and exits with status 4."""
