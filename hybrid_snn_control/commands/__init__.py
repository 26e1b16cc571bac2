"""``hsc`` sub-commands, one module each (registered in :mod:`hybrid_snn_control.cli`)."""
