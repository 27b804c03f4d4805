"""Celery workers of jspdb (``celery -A workers.app worker``)."""
