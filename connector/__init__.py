"""ml-connector core: keeps Xero and Zoho CRM in sync.

This package holds everything that is not Celery or Flask wiring: settings, storage, the
Xero and Zoho clients, the shared rate governor, the pure mappers, the pipeline and the
sandbox simulators. It never imports Flask or Celery (tests/test_layering.py checks it).
"""

__version__ = "0.1.0"
