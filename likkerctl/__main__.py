from likkerctl.cli.main import main

main()
