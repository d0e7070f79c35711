"""Mounted as a subpackage of ctloop; see setup.py.

Each component is a package: ``spec`` declares its inputs and outputs (``declaration``), ``executor`` does the work,
``__main__`` is the container's entry program. ``kfp_component`` makes the KFP container component of a declaration
(it imports kfp: used where pipelines are compiled).
"""
