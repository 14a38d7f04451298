"""The one exception type shown to users as a single line (the CLI prints it, no traceback)."""


class UserError(ValueError):
    """Bad input from a user: the message names the bad value and what is accepted."""
