"""Jobs: the queue over the jobs table, the worker that runs pipelines, the event bus."""
