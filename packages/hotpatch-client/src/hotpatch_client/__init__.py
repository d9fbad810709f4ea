"""The HotPatch device agent (not yet implemented).

This distribution will hold ``Agent``, the driver of
:func:`hotpatch_core.machine.step` that performs HTTP and disk I/O on a device,
and the fleet simulator. Until then it exports nothing.
"""

__all__: list[str] = []
