"""The model stage: the Inception-BN network, model bundles, training.

Import the submodules directly (``softlines_attr.model.inception_bn``, ``softlines_attr.model.bundle``);
this package module itself imports nothing heavy, so the CLI stays fast.
"""
