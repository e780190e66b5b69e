"""Components that ship with the core: tabular data sources, the simple loop, the local tracker,
the classification and regression evaluators and the grid searcher. They register through entry
points like any plugin (see pyproject.toml)."""
