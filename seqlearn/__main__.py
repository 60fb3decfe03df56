from seqlearn.cli.main import cli

cli(prog_name="seqlearn")
