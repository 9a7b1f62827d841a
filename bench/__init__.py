"""Benchmarks: each measures sqsloops side by side with its baselines in one run on the embedded AWS.

make bench-throughput    # msgs/s and API calls per message: raw boto3, sqsloops, the 2016 pattern, Celery
make bench-scaling       # a burst: time to the first extra loop, to max loops, to drain, back to min
make bench-recovery      # kill loops' execution environments: time until all are back, lost and duplicates
make bench-jobs          # the job layer: enqueue, throughput (tracked, untracked, python:, Celery), latency, requests
make bench-entry         # the doors: enqueue_many, POST /jobs/batch, SNS PublishBatch: jobs/s, latency, requests
"""
