r"""Command-line interface: thin commands that parse arguments and call the library."""
