from registry_server.cli import main

main()
