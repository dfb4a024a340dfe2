from otm.devtools.agent_stub.main import main

raise SystemExit(main())
