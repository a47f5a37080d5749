"""Quota and dynamic reservations together on the master, as in Mesos: a role's reservations count towards
its quota (allocated or not, made by an operator or a framework, refined to it or not), so they take it
towards its guarantees and its limits, and the allocator offers a role no unreserved resources past a
limit its reservations reach."""

from __future__ import annotations

from mesostw.model.quota import QuotaConfig
from mesostw.model.resources import Resources
from tests.unit.test_reservations import ReservationCase, op, refined, reserved


class ReservationsInQuotaTests(ReservationCase):
    """One agent of cpus:4;mem:1024;disk:1024 and a framework of role eng that keeps its offers."""

    def set_quotas(self, *configs: QuotaConfig) -> None:
        self.successResultOf(self.master.quota.update(list(configs)))
        self.cluster.settle()

    def operate(self, kind: str, resources: Resources) -> None:
        """An operator's operation; then past the 5 s refusal Mesos leaves on the offers it rescinds (the
        master's allocation timer is the service's: allocate as it would)."""
        self.successResultOf(self.master.operations.operate(self.agent_id, kind, resources, None))
        self.cluster.advance(5)
        self.master.allocate()

    def test_an_operator_reservation_counts_towards_the_limit(self) -> None:
        """eng is limited to 3 cpus; once an operator reserves 2 for it, eng is offered those 2 and only 1
        unreserved cpu, and its consumption is the reservation, used or not."""
        self.set_quotas(QuotaConfig("eng", limits={"cpus": 3.0}))
        self.assertEqual(self.offered().unreserved().scalar("cpus"), 3.0)
        self.operate("RESERVE", reserved("cpus:2"))
        offered = self.offered()
        self.assertEqual((offered.reserved("eng").scalar("cpus"), offered.unreserved().scalar("cpus")), (2.0, 1.0))
        self.assertEqual(self.master.quota.consumed("eng")["cpus"], 2.0)
        self.assertEqual(self.master.allocator.quota_consumed("eng")["cpus"], 3.0)  # the offer's unreserved cpu too

    def test_a_framework_reservation_stays_within_the_limit(self) -> None:
        """A framework of eng, limited to 2 cpus, reserves the 2 it was offered: it is offered them again,
        reserved, and no unreserved cpu; once it unreserves them it is offered 2 unreserved cpus again."""
        self.set_quotas(QuotaConfig("eng", limits={"cpus": 2.0}))
        self.assertEqual(self.offered().unreserved().scalar("cpus"), 2.0)
        self.accept(op("RESERVE", reserved("cpus:2")))
        offered = self.offered()
        self.assertEqual((offered.reserved("eng").scalar("cpus"), offered.unreserved().scalar("cpus")), (2.0, 0.0))
        self.assertEqual(self.master.allocator.quota_consumed("eng")["cpus"], 2.0)
        self.accept(op("UNRESERVE", reserved("cpus:2")))
        offered = self.offered()
        self.assertEqual((offered.reserved("eng").scalar("cpus"), offered.unreserved().scalar("cpus")), (0.0, 2.0))

    def test_a_parent_limit_counts_a_refined_reservation(self) -> None:
        """eng is limited to 3 cpus; 2 reserved for eng and refined to eng/web count towards eng's limit
        (once, as eng/web's), so eng's framework is offered only 1 unreserved cpu."""
        self.set_quotas(QuotaConfig("eng", limits={"cpus": 3.0}))
        self.operate("RESERVE", reserved("cpus:2"))
        self.operate("RESERVE", refined("cpus:2"))
        self.assertEqual(self.master.quota.consumed("eng")["cpus"], 2.0)
        self.assertEqual(self.master.quota.consumed("eng/web")["cpus"], 2.0)
        offered = self.offered()
        self.assertEqual(offered.unreserved().scalar("cpus"), 1.0)
        self.assertEqual(offered.reserved().scalar("cpus"), 0.0)  # eng/web's: not for a framework of eng


class GuaranteedByReservationsTests(ReservationCase):
    """The framework is of role dev; eng has a guarantee but no framework."""

    role = "dev"

    def test_a_reservation_meets_a_guarantee(self) -> None:
        """eng is guaranteed 2 cpus: 2 unreserved cpus are held back from dev for it, until an operator
        reserves 3 cpus for eng, which meets the guarantee: dev is then offered the last cpu."""
        self.successResultOf(self.master.quota.update([QuotaConfig("eng", guarantees={"cpus": 2.0})]))
        self.cluster.settle()
        self.assertEqual(self.offered().unreserved().scalar("cpus"), 2.0)
        self.successResultOf(self.master.operations.operate(self.agent_id, "RESERVE", reserved("cpus:3"), None))
        self.cluster.advance(5)  # past the refusal Mesos leaves on the offers it rescinds
        self.master.allocate()
        offered = self.offered()
        self.assertEqual((offered.unreserved().scalar("cpus"), offered.reserved().scalar("cpus")), (1.0, 0.0))
