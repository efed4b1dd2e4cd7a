from ci_gen.cli import main

raise SystemExit(main())
