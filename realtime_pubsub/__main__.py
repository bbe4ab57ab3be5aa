"""``python -m realtime_pubsub``: the same as the ``realtime-pubsub`` command."""

from ._cli import main

raise SystemExit(main())
