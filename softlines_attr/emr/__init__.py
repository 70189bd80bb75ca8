"""Run the pipeline on Amazon EMR with boto3: stage a release, launch GPU clusters, add and follow
steps, and schedule the whole pipeline (EventBridge Scheduler -> Step Functions -> transient EMR).

Modules: ``spec`` (the ``conf/emr.toml`` dataclasses), ``requests`` (pure request builders),
``iam`` (least-privilege role documents), ``stage`` (wheel + content-addressed release on S3),
``preflight`` (roles, buckets, release checks), ``run`` (launch / add-steps / wait), ``schedule``
(state machine + schedule), ``aws`` (sessions, planned calls, validation). See docs/EMR.md.
"""
