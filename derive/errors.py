"""The one exception type the command line turns into a one-line message.

Anything raised as `DeriveError` is a problem with what the user asked for (an unknown
cell, a malformed stage list, an unwritable path, a missing LaTeX engine); anything
else escaping is a bug in lstm-derive itself.
"""


class DeriveError(Exception):
    """A user-facing error: its message is printed on one line, then the program exits 2."""
