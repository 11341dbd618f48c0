"""``python -m modelroute`` is the ``modelroute`` command."""

from modelroute.cli import main

main()
