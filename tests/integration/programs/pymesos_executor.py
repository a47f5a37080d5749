"""A third-party custom executor: pymesos's executor driver over the v1 executor HTTP API.

Each task writes its data (base64 in TaskInfo.data) into the sandbox file
named by the task ID, then finishes. pymesos 0.3.15 predates executor secrets: the
driver below adds the one the agent gave it (``MESOS_EXECUTOR_AUTHENTICATION_TOKEN``)
to each request as ``Authorization: Bearer``, as Mesos 1.3+ executors do.
"""

import base64
import os
import time

from pymesos import Executor, MesosExecutorDriver


class FileWriter(Executor):
    def launchTask(self, driver, task):
        task_id = task["task_id"]["value"]
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_RUNNING", "timestamp": time.time()})
        data = base64.b64decode(task.get("data", ""))
        with open(os.path.join(os.environ["MESOS_SANDBOX"], task_id), "wb") as f:
            f.write(data)
        driver.sendStatusUpdate({"task_id": task["task_id"], "state": "TASK_FINISHED", "timestamp": time.time(),
                                 "message": f"wrote {len(data)} bytes"})

    def killTask(self, driver, task_id):
        driver.sendStatusUpdate({"task_id": task_id, "state": "TASK_KILLED", "timestamp": time.time()})


class TokenExecutorDriver(MesosExecutorDriver):
    """pymesos's driver, presenting the executor's secret with every call."""

    def __init__(self, executor):
        super().__init__(executor)
        self.authorization = "Bearer " + os.environ.get("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "")

    def gen_request(self):
        head, sep, rest = super().gen_request().partition(b"\r\n")
        return head + sep + f"Authorization: {self.authorization}\r\n".encode() + rest

    def _send(self, body, path="/api/v1/executor", method="POST", headers=None):
        return super()._send(body, path, method, {**(headers or {}), "Authorization": self.authorization})


if __name__ == "__main__":
    TokenExecutorDriver(FileWriter()).run()
