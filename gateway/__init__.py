"""ivc-gateway: a site gateway for Tencent Cloud IVC (API ``iss``, version 2023-05-17)."""

__version__ = "0.1.0"
