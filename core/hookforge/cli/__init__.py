"""The command line; see :mod:`hookforge.cli.main`."""
