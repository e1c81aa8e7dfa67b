"""build and the command line: the one place that sequences work."""
