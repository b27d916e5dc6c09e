"""`python -m digitkit`, which torchrun needs to launch the CLI as a module."""

from digitkit.cli import main

if __name__ == "__main__":
    main()
