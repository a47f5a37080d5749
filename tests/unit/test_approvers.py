"""The operator API's view ACLs (:mod:`mesostw.operator.approvers`), decision by decision.

Each test fails if the object its ACL judges is taken from the wrong place (a framework's user where
the task's own or its executor's command's user is the one that runs), if a resource's roles are not
all judged, or if decisions are remembered under the wrong key.
"""

from __future__ import annotations

import json

from twisted.trial import unittest

from mesostw.auth.acls import Authorizer, parse_acls
from mesostw.auth.policy import Security
from mesostw.model.info import CommandInfo, ExecutorInfo, FrameworkInfo
from mesostw.model.task import Task, TaskInfo
from mesostw.operator import approvers as approvers_module
from mesostw.operator.approvers import EVERYTHING, Approvers

#: dev may see what runs as nobody, and the roles "*" and "web", and nothing else; ops sees everything.
ACLS = {
    "permissive": False,
    "view_frameworks": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}},
                        {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
    "view_tasks": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}},
                   {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
    "view_executors": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}},
                       {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
    "view_containers": [{"principals": {"values": ["dev"]}, "users": {"values": ["nobody"]}},
                        {"principals": {"values": ["ops"]}, "users": {"type": "ANY"}}],
    "view_roles": [{"principals": {"values": ["dev"]}, "roles": {"values": ["web"]}},
                   {"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}}],
    "view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}}],
}

NOBODYS = FrameworkInfo("nobody", "f", id="F1")


def approvers(principal: str | None, acls: dict | None = None) -> Approvers:
    security = Security(authorizer=Authorizer(parse_acls(json.dumps(acls or ACLS))))
    return Approvers(security, principal)


def task(user: str | None = None, command_user: str | None = None, executor_user: str | None = None) -> Task:
    command = CommandInfo("true", user=command_user) if command_user else None
    executor = ExecutorInfo("E1", command=CommandInfo("run", user=executor_user)) if executor_user else None
    return Task(TaskInfo("t", "T1", "S1", command=command, executor=executor), "F1", user=user)


def executor(user: str | None) -> ExecutorInfo:
    return ExecutorInfo("E1", command=CommandInfo("run", user=user) if user else None)


class ApproversTests(unittest.TestCase):
    def test_without_acls_everything_is_visible(self):
        """No ACLs (or no policy at all): every view is allowed, without asking."""
        for everything in (Approvers(Security(), "dev"), Approvers(None, None), EVERYTHING):
            self.assertTrue(everything.everything)
            self.assertTrue(everything.view_task(task(user="root"), NOBODYS))
            self.assertTrue(everything.view_flags())
        self.assertFalse(approvers("dev").everything)

    def test_tasks_are_judged_by_the_user_they_run_as(self):
        """A task is judged by its own user, else its command's or its executor's command's, else its
        framework's: dev may not see a task of nobody's framework that runs as root."""
        dev = approvers("dev")
        self.assertTrue(dev.view_task(task(), NOBODYS))
        self.assertFalse(dev.view_task(task(user="root"), NOBODYS))
        self.assertFalse(dev.view_task(task(command_user="root"), NOBODYS))
        self.assertFalse(dev.view_task(task(executor_user="root"), NOBODYS))
        self.assertTrue(dev.view_task(task(user="nobody", command_user="root"), FrameworkInfo("root", "f")))
        self.assertTrue(approvers("ops").view_task(task(user="root"), NOBODYS))

    def test_executors_and_containers_are_judged_by_their_command_user(self):
        """An executor (and its container) is judged by its command's user, else its framework's."""
        dev = approvers("dev")
        for view in (dev.view_executor, dev.view_container):
            self.assertTrue(view(executor(None), NOBODYS))
            self.assertTrue(view(executor("nobody"), FrameworkInfo("root", "f")))
            self.assertFalse(view(executor("root"), NOBODYS))
            self.assertFalse(view(executor(None), FrameworkInfo("root", "f")))
        self.assertTrue(approvers("ops").view_executor(executor("root"), NOBODYS))

    def test_executors_and_containers_have_their_own_acls(self):
        """view_executors and view_containers are separate actions: allowing one shows nothing of the other."""
        only_containers = {**ACLS, "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "NONE"}}]}
        dev = approvers("dev", only_containers)
        self.assertFalse(dev.view_executor(executor("nobody"), NOBODYS))
        self.assertTrue(dev.view_container(executor("nobody"), NOBODYS))

    def test_flags(self):
        """view_flags has no object: ops may see the flags, dev and anonymous callers may not."""
        self.assertTrue(approvers("ops").view_flags())
        self.assertFalse(approvers("dev").view_flags())
        self.assertFalse(approvers(None).view_flags())

    def test_resources_need_every_role_they_name(self):
        """A resource is shown only if its role, its allocation's role and every reservation's role are
        viewable; unreserved ("*") resources always are."""
        dev = approvers("dev")
        self.assertTrue(dev.view_resource({"name": "cpus", "role": "*"}))
        self.assertTrue(dev.view_resource({"name": "cpus"}))
        self.assertTrue(dev.view_resource({"name": "cpus", "role": "web"}))
        self.assertFalse(dev.view_resource({"name": "cpus", "role": "db"}))
        self.assertFalse(dev.view_resource({"name": "cpus", "allocation_info": {"role": "db"}}))
        self.assertTrue(dev.view_resource({"name": "cpus", "allocation_info": {"role": "web"}}))
        self.assertFalse(dev.view_resource({"name": "cpus", "reservations": [{"role": "web"}, {"role": "db"}]}))
        self.assertTrue(dev.view_resource({"name": "cpus", "reservations": [{"role": "web"}, "junk", {"x": 1}]}))
        kept = dev.resources([{"name": "a", "role": "web"}, {"name": "b", "role": "db"}, {"name": "c"}])
        self.assertEqual([r["name"] for r in kept], ["a", "c"])

    def test_decisions_are_remembered_per_action_and_object(self):
        """Each (action, object) is decided once and remembered apart: a decision for one user is never
        reused for another, and the memory is bounded."""
        dev = approvers("dev")
        self.assertTrue(dev.allowed("view_tasks", "nobody"))
        self.assertFalse(dev.allowed("view_tasks", "root"))
        self.assertFalse(dev.allowed("view_frameworks", "root"))
        self.assertEqual(dev.security.authorizer.decisions[("view_tasks", "allowed")], 1)
        self.assertTrue(dev.allowed("view_tasks", "nobody"))
        self.assertEqual(dev.security.authorizer.decisions[("view_tasks", "allowed")], 1)  # remembered
        self.patch(approvers_module, "MAX_REMEMBERED", 3)
        dev.allowed("view_roles", "web")
        self.assertEqual(len(dev._decided), 1)  # 3 remembered, at most 3: forgotten, then this one remembered
        self.assertFalse(dev.allowed("view_tasks", "root"))
