"""Corrections from the people who use the service, kept for retraining: the store
(store.py, with its Alembic migrations), taking a correction in (service.py), the dataset an
export writes and training reads (dataset.py), and `lenet5 feedback` (cli.py)."""
