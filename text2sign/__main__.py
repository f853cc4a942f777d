from text2sign.cli import main

raise SystemExit(main())
