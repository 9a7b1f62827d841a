"""The embedded AWS: moto plus what moto does not do (run Lambda code, evaluate alarms, fire schedules, fast SQS).

Only for local runs and tests; the runtime modules of sqsloops never import this package. Modules here import
their extras (moto, samtranslator, croniter, yaml) at the top; this file stays empty so that importing
`sqsloops.local.worker` in a Lambda worker process costs nothing.
"""
