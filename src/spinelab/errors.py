"""The one exception type users see: its message is printed as a single line by the CLI."""


class SpinelabError(Exception):
    """Bad input or a request spinelab cannot serve; the message says what and where."""


class SpinelabWarning(UserWarning):
    """Something a user should know about a result that is still produced (the CLI prints one line each)."""
