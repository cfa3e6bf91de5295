"""``python -m kgsf_cli ...``: the ``kgsf`` command."""
import sys

from kgsf_cli.main import main

if __name__ == "__main__":
    sys.exit(main())
