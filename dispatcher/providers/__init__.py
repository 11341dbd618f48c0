"""Provider adapters: one file per wire protocol, behind the ``Provider`` protocol."""
