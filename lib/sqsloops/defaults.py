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
RECEIVE_MAX_MESSAGES = 10  # SQS ReceiveMessage returns at most 10 messages; without a window that is a batch's limit
MAX_BATCH_SIZE = 10_000  # with a batching window, as Lambda's SQS trigger allows on a standard queue (FIFO: 10)
BATCH_WINDOW_S = 0  # no batching window: each receive is dispatched as it comes
MAX_BATCH_WINDOW_S = 300  # Lambda's SQS trigger's MaximumBatchingWindowInSeconds ceiling
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

# AWS calls: one retry layer, botocore's standard mode, with a worst case derived from the settings (sqsloops.clients)
CONNECT_TIMEOUT_S = 1.0  # per attempt, every client
DYNAMODB_READ_TIMEOUT_S = 1.0  # per attempt: heartbeats, claims, token and registration reads and writes
SQS_READ_TIMEOUT_S = 1.0  # per attempt: settlement (delete, change visibility, send) and queue attributes
LAMBDA_READ_TIMEOUT_S = 2.0  # per attempt: the asynchronous invoke that starts or hands over a loop
RECEIVE_READ_MARGIN_S = 2.0  # a long poll's read timeout: the longest wait (MAX_WAIT_S) plus this
OTHER_READ_TIMEOUT_S = 10.0  # per attempt: CloudWatch, SNS, Scheduler, CloudFormation (never on a loop's path)
OTHER_MAX_ATTEMPTS = 3  # ... and their attempts (botocore standard mode's default)
CALL_MAX_ATTEMPTS = 4  # never more attempts per call than this, however much time a budget leaves
HEARTBEAT_CALL_SHARE = 0.5  # one DynamoDB or SQS call, every attempt and pause included: <= this * heartbeat_s
HANDOVER_SHARE = 0.8  # the last heartbeat plus the hand-over invoke, worst cases added: <= this * reserve_s
RETRY_FIRST_BACKOFF_S = 1.0  # botocore standard mode: the pause before retry n is at most this * 2^(n-1) ...
RETRY_MAX_BACKOFF_S = 20.0  # ... capped here (botocore.retries.standard.ExponentialBackoff)

# The process event
PAYLOAD_TEXT_MAX_CHARS = 2048  # a loop payload's strings are at most this long; a longer one is a malformed event
LOG_TEXT_MAX_CHARS = 2000  # a logged event or error text is cut to this many characters (its full length noted)
