"""Distributed training with MXNet's parameter server (ps-lite): kvstores, parts, and launching the roles.

Inside a worker (used by :func:`softlines_attr.model.train.train`):

* :mod:`.kvstore`: the ``dist_sync`` / ``dist_device_sync`` kvstore (or nothing for ``local`` /
  ``device``), the worker's rank and the number of workers; parameters kept identical on every
  worker (the kvstore only synchronises gradients; BatchNorm's moving statistics are averaged at the
  end of every epoch); the optimizer (and so its states, which checkpoints save) kept on the workers.
* :mod:`.parts`: how ``ImageRecordIter`` splits the shards into the workers' parts (record counts),
  the same number of batches on every worker (cycling a part that runs short: unequal counts hang
  ``dist_sync``), a short last evaluation batch marked as padding.
* :mod:`.dump`: the ``--worker-dump`` debug record of one worker (tests).

Launching without ``mxnet.tools.launch`` (whose ``dmlc_tracker`` calls ``Thread.isAlive``, gone
since Python 3.9): every ps-lite role is a process given ``DMLC_ROLE`` (scheduler, server, worker),
``DMLC_PS_ROOT_URI`` / ``DMLC_PS_ROOT_PORT`` (the scheduler's address), ``DMLC_NUM_SERVER`` and
``DMLC_NUM_WORKER``. A scheduler or server is ``python -c "import mxnet"``
(``mxnet/kvstore/kvstore_server.py`` runs the role on import and exits when the workers finish); a
worker is ``python -m softlines_attr.cli train ... --kv-store dist_sync``.

* :mod:`.launch`: starting and supervising the role processes, and :func:`~.launch.launch_local`
  (every role on loopback, one machine). The first role to fail (non-zero exit) ends the launch,
  kills the others and raises :class:`~softlines_attr.model.errors.DistributedLaunchError` naming
  the role with the tail of its stderr; a timeout does the same.
* :mod:`.barrier`: :func:`~.barrier.launch_spark`, one Spark barrier-mode stage whose N tasks each
  start a worker (and servers) on their own node, task 0 also the scheduler; checkpoints and the
  bundle uploaded from a node's scratch folder to an ``s3://`` ``--out``.
* :mod:`.argv`: reading and replacing one option in a worker's command line.

The package holds no code of its own: import the module you need.
"""
