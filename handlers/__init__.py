"""Tornado request handlers: HTTP translation only, logic lives in tusd_py.core.service."""
