"""The contract the imgpress API and worker both import: settings, the job schema and its Redis
records, storage paths, names, the error tree, webhooks, schedules, logs and metrics."""
