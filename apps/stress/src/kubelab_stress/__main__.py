from kubelab_stress.cli import main

raise SystemExit(main())
