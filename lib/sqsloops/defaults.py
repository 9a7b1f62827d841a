"""Every tunable number in one place, with its unit in its name."""

# The loop
HEARTBEAT_S = 10.0  # how often a running loop proves its token is still wanted
UNPROVEN_HEARTBEATS = 2  # a loop that could not prove its token for this many heartbeat periods stops receiving
RESERVE_S = 15.0  # stop polling when less than this much invocation time is left, then recurse
MAX_WAIT_S = 20  # SQS long-poll ceiling
CONFIG_TTL_S = 30.0  # how long a loop trusts its cached registration
IDLE_SLEEP_S = 1.0  # pause after an empty short poll (wait_s 0), so an idle loop does not spin
LOOP_ERROR_BASE_S = 0.5  # backoff after a failed receive (or any failed iteration), doubling per repeat
LOOP_ERROR_MAX_S = 20.0  # ... capped

# Registration defaults and bounds
MIN_LOOPS = 0
MAX_LOOPS = 10
MAX_LOOPS_LIMIT = 1000
BATCH_SIZE = 10
WAIT_S = 20
VISIBILITY_TIMEOUT_S = 60
MAX_VISIBILITY_TIMEOUT_S = 43_200  # SQS ceiling: 12 h
BACKLOG_PER_LOOP = 100
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 900.0

# Scaling and restart
STALE_AFTER_S = 120  # a token whose last_used is older than this has no live loop
ALARM_PERIOD_S = 60  # CloudWatch standard-resolution period for SQS metrics
ALARM_STEPS = 4  # staggered scale-up thresholds per registration

# Transient AWS errors (throttling, 5xx) on control-plane writes
TRANSIENT_RETRIES = 5
TRANSIENT_BASE_S = 0.1
TRANSIENT_MAX_S = 5.0
