"""Run the pipeline on Amazon EMR with boto3: stage a release, launch GPU clusters, add and follow
steps, and schedule the whole pipeline (EventBridge Scheduler -> Step Functions -> transient EMR).

Modules: ``spec`` (the ``conf/emr.toml`` dataclasses), ``checks`` (what a type cannot express),
``jobs`` (the jobs' command lines), ``placeholders`` (the shipped example values); pure request
builders ``requests`` (RunJobFlow, AddJobFlowSteps, ARNs), ``cluster`` (nodes, bootstrap, EMR
configurations, tags), ``steps`` (spark-submit steps), ``workflow`` (state machine, schedule);
``iam`` (least-privilege role documents); ``release`` (sources, id, S3 location), ``wheel``,
``upload`` (the release's objects and PutObject requests), ``stage`` (``emr stage``); ``preflight``
(roles, buckets, release checks), ``run`` (launch / add-steps / wait), ``failure`` (a failed
step's report), ``schedule`` (``emr schedule``), ``aws`` (sessions, planned calls, validation).
See docs/EMR.md.
"""
