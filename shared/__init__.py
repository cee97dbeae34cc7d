"""The contract the imgpress API and worker both import: settings, the job schema and its Redis
records, storage paths and the store of job files (a folder or an S3 bucket), names, the error
tree, webhooks, schedules, logs and metrics."""
