from flowaccent.cli.main import entry

entry()
