"""Leader election as Mesos does it in ZooKeeper: who leads, and how detectors follow, on a fake ZooKeeper.

The election is generic (any group, any data); the masters' group holds MasterInfo JSON.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from kazoo.exceptions import NoNodeError
from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mesostw.detector import ZooKeeperMasterDetector, decode_master_info, encode_master_info
from mesostw.interfaces import IMasterDetector
from mesostw.model.info import MasterInfo
from mesostw.zk.election import Contender, GroupDetector, leader_of, sequence

PATH = "/mesos"


class FakeZooKeeper:
    """The part of :class:`mesostw.zk.client.ZooKeeper` that election uses, with Deferreds and no kazoo.

    ``get`` serves :attr:`nodes`; with :attr:`hold` set it returns Deferreds the test fires itself.
    ``children(names)`` plays a change of the watched children list.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {}
        self.watches: list[tuple[str, Callable[[list[str]], None]]] = []
        self.ensured: list[str] = []
        self.gets: list[str] = []
        self.deleted: list[str] = []
        self.hold = False
        self.pending: dict[str, defer.Deferred] = {}
        self._sequence = 0

    def ensure_path(self, path: str) -> defer.Deferred:
        self.ensured.append(path)
        return defer.succeed(path)

    def watch_children(self, path: str, callback: Callable[[list[str]], None]) -> Any:
        self.watches.append((path, callback))
        return object()

    def get(self, path: str) -> defer.Deferred:
        self.gets.append(path)
        if self.hold:
            d: defer.Deferred = defer.Deferred()
            self.pending[path] = d
            return d
        if path in self.nodes:
            return defer.succeed((self.nodes[path], None))
        return defer.fail(NoNodeError())

    def create(self, path: str, value: bytes = b"", ephemeral: bool = False, sequence: bool = False,
               makepath: bool = False) -> defer.Deferred:
        assert ephemeral and sequence
        created = f"{path}{self._sequence:010d}"
        self._sequence += 1
        self.nodes[created] = value
        return defer.succeed(created)

    def delete(self, path: str, version: int = -1) -> defer.Deferred:
        self.deleted.append(path)
        if self.nodes.pop(path, None) is None:
            return defer.fail(NoNodeError())
        return defer.succeed(True)

    def children(self, names: list[str]) -> None:
        for _, callback in self.watches:
            callback(list(names))

    def release(self, node: str) -> None:
        """Answer a held ``get`` of ``node`` from :attr:`nodes` (or as vanished)."""
        d = self.pending.pop(f"{PATH}/{node}")
        path = f"{PATH}/{node}"
        if path in self.nodes:
            d.callback((self.nodes[path], None))
        else:
            d.errback(NoNodeError())


def master(name: str, port: int = 5050) -> MasterInfo:
    return MasterInfo(id=f"id-{name}", ip="127.0.0.1", port=port, hostname=name, version="1.0.0")


class SequenceTests(unittest.TestCase):
    def test_sequence_of_each_label(self) -> None:
        """``json.info_``, ``info_`` and bare ten-digit names are members; the number is their sequence."""
        self.assertEqual(sequence("json.info_0000000003"), 3)
        self.assertEqual(sequence("info_0000000017"), 17)
        self.assertEqual(sequence("0000000042"), 42)

    def test_non_members(self) -> None:
        """``log_replicas``, foreign labels and malformed sequences are not members."""
        for name in ("log_replicas", "foo_0000000001", "json.info_123", "json.info_", "info_00000000001",
                     "json.info_000000000a", "registry", "xjson.info_0000000001"):
            self.assertIsNone(sequence(name), name)

    def test_leader_is_lowest_sequence(self) -> None:
        """The member with the lowest sequence leads, whatever the order of the list."""
        self.assertEqual(leader_of(["json.info_0000000007", "json.info_0000000003", "json.info_0000000005"]),
                         "json.info_0000000003")

    def test_lowest_sequence_wins_across_labels(self) -> None:
        """Labels do not count, only the number (a lexicographic minimum would pick ``0000000009``)."""
        children = ["json.info_0000000005", "info_0000000004", "0000000009"]
        self.assertEqual(leader_of(children), "info_0000000004")
        self.assertEqual(leader_of(["json.info_0000000002", "0000000009", "info_0000000003"]),
                         "json.info_0000000002")

    def test_foreign_children_ignored(self) -> None:
        """``log_replicas``, ``registry`` and foreign nodes never lead."""
        self.assertEqual(leader_of(["log_replicas", "registry", "aaa_0000000000", "json.info_0000000011"]),
                         "json.info_0000000011")

    def test_no_members_no_leader(self) -> None:
        """Without members there is no leader."""
        self.assertIsNone(leader_of([]))
        self.assertIsNone(leader_of(["log_replicas", "registry"]))


class ContenderTests(unittest.TestCase):
    def setUp(self) -> None:
        self.zk = FakeZooKeeper()
        self.contender = Contender(self.zk, PATH + "/")  # type: ignore[arg-type]

    def test_contend_creates_json_member(self) -> None:
        """Contending creates ``<path>/json.info_N`` holding the MasterInfo as JSON."""
        node = self.successResultOf(self.contender.contend(encode_master_info(master("m1"))))
        self.assertEqual(node, "json.info_0000000000")
        self.assertEqual(self.contender.node_path, f"{PATH}/json.info_0000000000")
        self.assertEqual(self.zk.ensured, [PATH])
        assert self.contender.node_path is not None
        stored = json.loads(self.zk.nodes[self.contender.node_path])
        self.assertEqual(MasterInfo.from_json(stored), master("m1"))
        self.assertEqual(stored["address"], {"hostname": "m1", "ip": "127.0.0.1", "port": 5050})

    def test_withdraw_deletes_member(self) -> None:
        """Withdrawing deletes the member node and forgets it."""
        self.successResultOf(self.contender.contend(b"m1"))
        path = self.contender.node_path
        self.successResultOf(self.contender.withdraw())
        self.assertEqual(self.zk.deleted, [path])
        self.assertNotIn(path, self.zk.nodes)
        self.assertIsNone(self.contender.node)
        self.assertIsNone(self.contender.node_path)

    def test_withdraw_when_not_contending(self) -> None:
        """Withdrawing without a node does nothing."""
        self.assertIsNone(self.successResultOf(self.contender.withdraw()))
        self.assertEqual(self.zk.deleted, [])

    def test_withdraw_of_vanished_node_succeeds(self) -> None:
        """A member node already gone (e.g. with the session) is no error."""
        self.successResultOf(self.contender.contend(b"m1"))
        self.zk.nodes.clear()
        self.assertIsNone(self.successResultOf(self.contender.withdraw()))


class DetectorTests(unittest.TestCase):
    def setUp(self) -> None:
        self.zk = FakeZooKeeper()
        self.detector = ZooKeeperMasterDetector(self.zk, PATH)  # type: ignore[arg-type]
        self.seen: list[tuple[MasterInfo | None, str | None]] = []
        self.detector.listeners.append(lambda info, node: self.seen.append((info, node)))
        self.successResultOf(self.detector.start())

    def member(self, node: str, info: MasterInfo | None = None, data: bytes | None = None) -> None:
        if data is None:
            assert info is not None
            data = json.dumps(info.to_json()).encode()
        self.zk.nodes[f"{PATH}/{node}"] = data

    def test_provides_interface(self) -> None:
        """The detector provides IMasterDetector."""
        self.assertTrue(verifyObject(IMasterDetector, self.detector))

    def test_start_watches_the_path(self) -> None:
        """Starting makes sure the path exists and watches its children."""
        self.assertEqual(self.zk.ensured, [PATH])
        self.assertEqual([path for path, _ in self.zk.watches], [PATH])

    def test_first_state_without_leader_is_reported(self) -> None:
        """An empty group is reported once, as no leader; ``detect(None)`` keeps waiting."""
        self.zk.children([])
        self.assertEqual(self.seen, [(None, None)])
        self.assertIsNone(self.detector.leader)
        d = self.detector.detect(None)
        self.assertNoResult(d)
        self.zk.children(["log_replicas"])
        self.assertEqual(self.seen, [(None, None)])
        self.assertNoResult(d)

    def test_leader_found(self) -> None:
        """The lowest member's MasterInfo is read and given to listeners, waiters and ``leader_address``."""
        d = self.detector.detect()
        address = self.detector.leader_address()
        self.member("json.info_0000000002", master("m2"))
        self.member("json.info_0000000005", master("m5"))
        self.zk.children(["log_replicas", "json.info_0000000005", "json.info_0000000002"])
        self.assertEqual(self.zk.gets, [f"{PATH}/json.info_0000000002"])
        self.assertEqual(self.seen, [(master("m2"), "json.info_0000000002")])
        self.assertEqual(self.successResultOf(d), master("m2"))
        self.assertEqual(self.successResultOf(address), ("127.0.0.1", 5050))
        self.assertEqual(self.detector.leader_node, "json.info_0000000002")
        self.assertEqual(self.successResultOf(self.detector.leader_address()), ("127.0.0.1", 5050))

    def test_detect_fires_at_once_when_leader_differs(self) -> None:
        """``detect(previous)`` fires at once when the known leader differs from ``previous``."""
        self.member("json.info_0000000001", master("m1"))
        self.zk.children(["json.info_0000000001"])
        self.assertEqual(self.successResultOf(self.detector.detect(None)), master("m1"))
        self.assertEqual(self.successResultOf(self.detector.detect(master("other", 6060))), master("m1"))

    def test_detect_waits_for_a_change(self) -> None:
        """``detect(current)`` waits, then fires with the next leader."""
        self.member("json.info_0000000001", master("m1"))
        self.member("json.info_0000000002", master("m2", 5060))
        self.zk.children(["json.info_0000000001", "json.info_0000000002"])
        d = self.detector.detect(master("m1"))
        self.assertNoResult(d)
        del self.zk.nodes[f"{PATH}/json.info_0000000001"]
        self.zk.children(["json.info_0000000002"])
        self.assertEqual(self.successResultOf(d), master("m2", 5060))
        self.assertEqual([node for _, node in self.seen], ["json.info_0000000001", "json.info_0000000002"])

    def test_detect_fires_with_none_when_leader_goes(self) -> None:
        """A waiter on the current leader learns (None) when the group empties."""
        self.member("json.info_0000000001", master("m1"))
        self.zk.children(["json.info_0000000001"])
        d = self.detector.detect(master("m1"))
        self.zk.children([])
        self.assertIsNone(self.successResultOf(d))
        self.assertEqual(self.seen[-1], (None, None))
        self.assertIsNone(self.detector.leader_node)

    def test_unchanged_leader_is_not_fetched_again(self) -> None:
        """Members joining behind the leader change nothing: no read, no listener call."""
        self.member("json.info_0000000001", master("m1"))
        self.zk.children(["json.info_0000000001"])
        self.zk.children(["json.info_0000000001", "json.info_0000000002"])
        self.zk.children(["json.info_0000000001", "json.info_0000000002", "log_replicas"])
        self.assertEqual(len(self.zk.gets), 1)
        self.assertEqual(len(self.seen), 1)

    def test_non_json_leader_is_no_readable_leader(self) -> None:
        """A leader node holding binary data (pre-0.24 protobuf) is reported as no readable leader."""
        self.member("info_0000000001", data=b"\x08\x01\x12\x05\xff\xfe")
        self.member("json.info_0000000002", master("m2"))
        d = self.detector.detect(None)
        self.zk.children(["json.info_0000000002", "info_0000000001"])
        self.assertEqual(self.seen, [(None, "info_0000000001")])
        self.assertIsNone(self.detector.leader)
        self.assertEqual(self.detector.leader_node, "info_0000000001")
        self.assertNoResult(d)
        # Once it goes, the JSON member leads.
        del self.zk.nodes[f"{PATH}/info_0000000001"]
        self.zk.children(["json.info_0000000002"])
        self.assertEqual(self.successResultOf(d), master("m2"))

    def test_json_that_is_not_master_info(self) -> None:
        """JSON that is not a MasterInfo (no id, wrong types, not an object) is no readable leader."""
        for data in (b'{"hostname": "x"}', b"[1, 2]", b"null", b'"master@1.2.3.4:5050"',
                     b'{"id": "a", "address": {"ip": "1.2.3.4", "port": "x"}}', b""):
            self.seen.clear()
            self.member("json.info_0000000001", data=data)
            self.zk.children(["json.info_0000000001"])
            self.assertEqual(self.seen, [(None, "json.info_0000000001")], data)
            self.zk.children([])

    def test_unreadable_leader_is_read_again_on_change(self) -> None:
        """While the leader is unreadable each change reads it again (it may have been rewritten)."""
        self.member("json.info_0000000001", data=b"garbage")
        self.zk.children(["json.info_0000000001"])
        self.member("json.info_0000000001", master("m1"))
        self.zk.children(["json.info_0000000001", "json.info_0000000003"])
        self.assertEqual(self.detector.leader, master("m1"))
        self.assertEqual(len(self.zk.gets), 2)

    def test_vanished_leader_node(self) -> None:
        """A leader node deleted before it could be read means no leader, until the next change."""
        self.zk.children(["json.info_0000000004"])
        self.assertEqual(self.seen, [(None, None)])
        self.assertIsNone(self.detector.leader)
        self.assertIsNone(self.detector.leader_node)
        self.member("json.info_0000000006", master("m6"))
        self.zk.children(["json.info_0000000006"])
        self.assertEqual(self.detector.leader, master("m6"))

    def test_stale_read_is_ignored(self) -> None:
        """A read answered after the leader changed again does not overwrite the newer leader."""
        self.zk.hold = True
        self.member("json.info_0000000001", master("m1"))
        self.member("json.info_0000000002", master("m2", 5060))
        d = self.detector.detect(None)
        self.zk.children(["json.info_0000000001", "json.info_0000000002"])
        self.zk.children(["json.info_0000000002"])
        self.zk.release("json.info_0000000002")
        self.zk.release("json.info_0000000001")
        self.assertEqual(self.detector.leader, master("m2", 5060))
        self.assertEqual(self.seen, [(master("m2", 5060), "json.info_0000000002")])
        self.assertEqual(self.successResultOf(d), master("m2", 5060))

    def test_stale_failure_is_ignored(self) -> None:
        """A failed read of a former leader's node, answered late, does not clear the newer leader."""
        self.zk.hold = True
        self.member("json.info_0000000002", master("m2"))
        self.zk.children(["json.info_0000000001"])
        self.zk.children(["json.info_0000000002"])
        self.zk.release("json.info_0000000002")
        self.zk.release("json.info_0000000001")  # not in nodes: fails with NoNodeError
        self.assertEqual(self.detector.leader, master("m2"))
        self.assertEqual(self.seen, [(master("m2"), "json.info_0000000002")])

    def test_same_endpoint_same_id_is_no_change(self) -> None:
        """A new node for the same master (same id and address) does not wake ``detect`` waiters."""
        self.member("json.info_0000000001", master("m1"))
        self.zk.children(["json.info_0000000001"])
        d = self.detector.detect(master("m1"))
        self.member("json.info_0000000007", master("m1"))
        self.zk.children(["json.info_0000000007"])
        self.assertNoResult(d)
        self.assertEqual(self.detector.leader_node, "json.info_0000000007")
        self.assertEqual(len(self.seen), 2)

    def test_several_listeners(self) -> None:
        """Every listener is told of every change, in order."""
        other: list[str | None] = []
        self.detector.listeners.append(lambda info, node: other.append(node))
        self.member("json.info_0000000001", master("m1"))
        self.member("json.info_0000000002", master("m2"))
        self.zk.children(["json.info_0000000001", "json.info_0000000002"])
        self.zk.children(["json.info_0000000002"])
        self.zk.children([])
        self.assertEqual(other, ["json.info_0000000001", "json.info_0000000002", None])
        self.assertEqual([node for _, node in self.seen], other)


class GenericGroupTests(unittest.TestCase):
    """The election serves any group: a framework's instances with their API address as data."""

    def setUp(self) -> None:
        self.zk = FakeZooKeeper()

    def test_custom_label(self) -> None:
        """A group with its own label counts only its members, by sequence."""
        labels = ("member_",)
        self.assertEqual(sequence("member_0000000004", labels), 4)
        self.assertIsNone(sequence("json.info_0000000001", labels))
        self.assertEqual(leader_of(["member_0000000009", "member_0000000002", "json.info_0000000001"], labels),
                         "member_0000000002")

    def test_contender_and_detector_with_bytes(self) -> None:
        """A contender's data is what the detector reports as leader; withdrawing hands over to the next."""
        first = Contender(self.zk, "/cron/leader", b"10.0.0.1:4400", label="member_")  # type: ignore[arg-type]
        second = Contender(self.zk, "/cron/leader", b"10.0.0.2:4400", label="member_")  # type: ignore[arg-type]
        self.successResultOf(first.contend())
        self.successResultOf(second.contend())
        detector = GroupDetector(self.zk, "/cron/leader", labels=("member_",))  # type: ignore[arg-type]
        self.successResultOf(detector.start())
        members = [path.rsplit("/", 1)[1] for path in self.zk.nodes]
        self.zk.children(["json.info_0000000000", *members])
        self.assertEqual(self.successResultOf(detector.detect()), b"10.0.0.1:4400")
        self.assertEqual(detector.leader_node, first.node)
        following = detector.detect(b"10.0.0.1:4400")
        self.successResultOf(first.withdraw())
        self.zk.children([path.rsplit("/", 1)[1] for path in self.zk.nodes])
        self.assertEqual(self.successResultOf(following), b"10.0.0.2:4400")

    def test_unparseable_data_is_no_leader(self) -> None:
        """Data the group's parser refuses (ValueError) means no readable leader."""
        detector = GroupDetector(self.zk, PATH, parse=decode_master_info)  # type: ignore[arg-type]
        self.successResultOf(detector.start())
        self.zk.nodes[f"{PATH}/json.info_0000000001"] = b"not json"
        self.zk.children(["json.info_0000000001"])
        self.assertIsNone(detector.leader)
        self.assertEqual(detector.leader_node, "json.info_0000000001")
