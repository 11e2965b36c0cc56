"""FID Arena server: configuration, competitions, scoring engine, database, queue, worker, API and web pages."""

__version__ = "0.1.0"
