"""Signals: small objects that read one property of a request, behind one interface."""
