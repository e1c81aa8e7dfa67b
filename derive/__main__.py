"""`python -m derive` is the `lstm-derive` command."""
import sys

from derive.cli import main

sys.exit(main())
