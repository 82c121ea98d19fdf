"""The dev host's queue poller polls as the Functions host does: again at once while it finds
messages, a growing wait up to maxPollingInterval when idle, batchSize and newBatchThreshold
as the host reads them, and no more invocations at once than the Python worker has threads."""

import base64
import json
import random
import uuid

from azure.storage.queue import QueueClient

from headoffice.devhost import MIN_POLLING_INTERVAL, DevHost, PollBackoff, worker_threads
from headoffice.stand_ins import free_port
from tests.devhost.test_devhost import wait_for

COUNTING_APP = '''
import threading
import time
import azure.functions as func

app = func.FunctionApp()
lock = threading.Lock()
state = {"running": 0, "most": 0, "done": 0}


@app.queue_trigger(arg_name="msg", queue_name="QUEUE", connection="Storage")
def count(msg: func.QueueMessage) -> None:
    with lock:
        state["running"] += 1
        state["most"] = max(state["most"], state["running"])
    time.sleep(0.02)  # long enough for invocations to overlap when the pool lets them
    with lock:
        state["running"] -= 1
        state["done"] += 1
'''


def start_counting_host(storage, tmp_path, messages: int, queues: dict, env: dict | None = None):
    queue = "poll-" + uuid.uuid4().hex[:10]
    client = QueueClient.from_connection_string(storage, queue)
    client.create_queue()
    for i in range(messages):  # all waiting before the host starts, so batches come full
        client.send_message(base64.b64encode(f"m{i}".encode()).decode())
    (tmp_path / "function_app.py").write_text(COUNTING_APP.replace("QUEUE", queue))
    (tmp_path / "host.json").write_text(json.dumps({"version": "2.0", "extensions": {"queues": queues}}))
    host = DevHost(tmp_path, port=free_port(), env={"Storage": storage, **(env or {})}).start()
    app_module = next(m for m in __import__("sys").modules.values()
                      if getattr(m, "__file__", None) == str(tmp_path / "function_app.py"))
    return host, host.pollers[0], app_module.state


def test_the_backoff_starts_at_the_hosts_minimum_after_messages_and_grows_to_max_polling_interval():
    backoff = PollBackoff(maximum=2.0, rng=random.Random(7))
    assert backoff.next_delay(found_since_last_wait=True) == MIN_POLLING_INTERVAL
    waits = [backoff.next_delay(found_since_last_wait=False) for _ in range(12)]
    assert waits == sorted(waits) and len(set(waits[:4])) == 4  # it grows at every idle poll at first
    assert waits[-3:] == [2.0, 2.0, 2.0]  # and stays at maxPollingInterval
    assert backoff.next_delay(found_since_last_wait=True) == MIN_POLLING_INTERVAL  # a message resets it


def test_the_poller_receives_again_at_once_while_it_finds_messages_then_backs_off_to_the_maximum(storage, tmp_path):
    host, poller, state = start_counting_host(storage, tmp_path, 40, {
        "batchSize": 16, "newBatchThreshold": 8, "maxPollingInterval": "00:00:00.500"})
    try:
        assert wait_for(lambda: state["done"] == 40)
        assert wait_for(lambda: ("idle", 0.5) in poller.history)
        history = list(poller.history)
        # 40 messages in batches of 16, 16 and 8, with no wait between receives that found some.
        assert history[:4] == [("messages", 16), ("messages", 16), ("messages", 8), ("idle", MIN_POLLING_INTERVAL)]
        idle = [wait for kind, wait in history[3:]]
        assert idle == sorted(idle) and idle[-1] == 0.5
    finally:
        host.stop()


def test_no_more_invocations_run_at_once_than_the_worker_has_threads(storage, tmp_path):
    host, poller, state = start_counting_host(storage, tmp_path, 30, {"batchSize": 16, "maxPollingInterval": "00:00:00.500"},
                                              env={"PYTHON_THREADPOOL_THREAD_COUNT": "2"})
    try:
        assert wait_for(lambda: state["done"] == 30)
        assert state["most"] == 2
    finally:
        host.stop()


def test_the_worker_thread_count_is_the_python_worker_setting_else_the_thread_pool_default():
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "4"}) == 4
    assert worker_threads({"PYTHON_THREADPOOL_THREAD_COUNT": "100"}) == 32
    assert worker_threads({}) is None  # ThreadPoolExecutor's own default, min(32, cores + 4)
