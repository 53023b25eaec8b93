from seller.cli import main

raise SystemExit(main())
