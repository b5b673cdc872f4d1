"""``python -m proving_ground.client``: the robot client's command line."""

from proving_ground.client.cli import main

raise SystemExit(main())
