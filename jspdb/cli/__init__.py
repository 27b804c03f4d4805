"""The ``jsp`` command line: thin layers over the library."""
