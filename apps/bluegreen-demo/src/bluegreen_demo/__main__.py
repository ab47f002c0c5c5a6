from bluegreen_demo.cli import main

raise SystemExit(main())
