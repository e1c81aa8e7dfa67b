"""`python -m derive` is the `lstm-derive` command."""
import sys

from lstm_derive.cli import main

sys.exit(main())
