"""Graded access for the NGIS 3D server (issue 5).

- :mod:`.grades`: the grades of ``standards/access_grades.yml`` and the *projection* of the server
  config per grade (only the resources a grade may see; what it may not see does not exist for it);
- :mod:`.keys`: API keys, stored hashed in SQLite, verified with a short per-process cache;
- ``ratelimit``, ``metering``, ``audit``: the per-key token bucket, usage meter and hash-chained
  audit log, called by :class:`gis.server.app.NgisApp` for every request.
"""
