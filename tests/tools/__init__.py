"""Developer tools run by `make`: benchmark, load run, packaging. Not shipped in the package."""
