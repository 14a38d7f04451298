"""The one exception type shown to users as a single line (the CLI prints it, no traceback)."""


class UserError(ValueError):
    """Bad input from a user: the message names the bad value and what is accepted."""


def check_choice(what: str, value, accepted) -> None:
    """UserError unless `value` is one of `accepted` ("<what> 'x' is unknown; accepted: a, b")."""
    if value not in accepted:
        raise UserError(f"{what} {value!r} is unknown; accepted: {', '.join(accepted)}")


def check_positive_int(what: str, value) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise UserError(f"{what} must be a positive integer, got {value!r}")
