"""Uploads: the upload flow, its rate limits and bounded queues, and the rules of who may submit."""
