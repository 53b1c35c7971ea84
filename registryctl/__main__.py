from registryctl.cli import main

raise SystemExit(main())
