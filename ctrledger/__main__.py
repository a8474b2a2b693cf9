"""``python -m ctrledger``: the command line (see :mod:`ctrledger.cli`)."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="ctrledger")
