from hybridtrace.cli.main import main

raise SystemExit(main())
