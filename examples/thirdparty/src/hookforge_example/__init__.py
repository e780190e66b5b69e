"""An example of a plugin package published outside hookforge (see README.md)."""
