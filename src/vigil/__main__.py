from vigil.cli import main

raise SystemExit(main())
