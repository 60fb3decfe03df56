"""The seqlearn command line (installed as seqlearn.cli)."""
