"""A third-party custom executor: pymesos's executor driver over the v1 executor HTTP API.

Each task writes its data (base64 in TaskInfo.data) into the sandbox file
named by the task ID, then finishes.
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


if __name__ == "__main__":
    MesosExecutorDriver(FileWriter()).run()
