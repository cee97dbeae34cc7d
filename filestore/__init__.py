"""Where job files live, for the API and the worker alike: the `Blobs` interface, the local
folder (the default) and an S3-compatible bucket."""
