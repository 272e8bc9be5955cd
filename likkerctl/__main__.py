from likkerctl.cli import main

main()
