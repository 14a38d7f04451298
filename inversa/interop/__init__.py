"""Bridges to other libraries (optional extras): `inversa.interop.deepinv` (pip install 'inversa[deepinv]')."""
