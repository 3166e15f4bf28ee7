"""The `vast` command line."""
