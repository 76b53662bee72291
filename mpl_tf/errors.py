"""The one exception type that means "the user asked for something invalid"."""


class ConfigError(ValueError):
    """Bad flag value, file or path. The message names it and says what to do.

    `main` prints it as one line and exits with status 2 before doing any work.
    """
