"""sqsloops: serverless background jobs on recursive self-invoking Lambda SQS pollers."""

__version__ = "0.1.0"
