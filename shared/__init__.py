"""The contract between the imgpress API and worker: settings, job schema, storage, errors."""
