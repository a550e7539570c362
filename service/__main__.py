from agentplex.cli import main

raise SystemExit(main())
