"""The ``ngis`` command line: one click group, one module per job."""
