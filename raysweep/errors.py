"""The one exception type for input a user can fix.

A command that meets an `InputError` (a malformed sweep, a missing data root, a bad flag, an
output location it cannot use) prints its message on one line and exits 2; it names the thing and
what was expected. Any other exception is a bug in raysweep and shows its traceback.
"""


class InputError(ValueError):
    """Bad input: a file, a field, a flag or a location that cannot work; the message says why."""
