"""Command code: what each ``ds-connector`` subcommand does around the library (config, token, lock,
logging, output). ``cli.py`` only parses arguments and calls one function here."""
