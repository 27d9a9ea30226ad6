from lemagen.cli import main

main()
