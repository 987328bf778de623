"""``python -m gis`` is ``ngis``."""

from gis.cli.main import cli

if __name__ == "__main__":
    cli(prog_name="ngis")
