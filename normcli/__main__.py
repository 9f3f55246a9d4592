"""``python -m normcli`` runs the command line."""

from normcli.cli import main

if __name__ == "__main__":
    main()
