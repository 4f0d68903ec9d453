"""Celery workers of srservice: the app factory and the thin tasks."""
