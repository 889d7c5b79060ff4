"""The scheduler: durable jobs and actor reminders, fired once per tick across the sidecars of an
app id (services/scheduler/base.py)."""
