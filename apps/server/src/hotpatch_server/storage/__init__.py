"""Storage: archives, patches and assets on local disk or S3, their download route and cleanup."""
