"""``python -m hookforge`` is ``hookforge``."""

from hookforge.cli.main import main

if __name__ == "__main__":
    main()
