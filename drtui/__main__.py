from drtui.cli import main

main()
