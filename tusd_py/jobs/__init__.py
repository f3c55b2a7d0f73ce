"""Processing after upload (SPEC §7): job records, the huey queue, consumers and job kinds.

Entry points: :class:`tusd_py.jobs.system.JobSystem` (one per process) and
``tusd-py worker`` (:mod:`tusd_py.cli.worker`).
"""
