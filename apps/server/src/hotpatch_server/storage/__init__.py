"""Storage: archives, patches and assets on local disk or S3, and the cleanup of unused blobs."""
