"""Hooks after (and around) uploads: signed webhooks delivered through the job queue."""
