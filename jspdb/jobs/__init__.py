"""Tile and image jobs: planning, running one step exactly once, status.

- `jspdb.jobs.steps` -- the registry of steps (name, scope, fingerprint, body, next step);
- `jspdb.jobs.runner` -- runs one job row: mutual exclusion, skip-if-unchanged,
  results and job state in one transaction, bounded attempts;
- `jspdb.jobs.plan` -- which jobs a run needs; rows first, messages after commit; sweep;
- `jspdb.jobs.status` -- what operators see.
"""
