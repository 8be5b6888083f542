"""``python -m tickrec``: the same as the ``tickrec`` command."""

from tickrec.cli import main

main()
