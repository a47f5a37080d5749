"""The seams of mesostw: each interface here has more than one provider.

Links are a component's handle on a peer across some transport (Perspective
Broker, HTTP, or a direct in-process call); the cores of the master and the
agent only ever talk to links, so one behaviour serves every transport.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import Attribute, Interface


class IAllocator(Interface):
    """Decides which framework is offered which agent's free resources."""

    def addFramework(framework_id, role, used=None, active=True, refinement=True):
        """Track a framework in ``role``; ``used`` maps agent IDs to resources it already holds;
        ``refinement``: whether it may be offered refined reservations (RESERVATION_REFINEMENT)."""

    def removeFramework(framework_id):
        """Forget a framework and return everything it held."""

    def activateFramework(framework_id):
        """Make a framework eligible for offers again (it reconnected)."""

    def deactivateFramework(framework_id):
        """Stop offering to a framework (it disconnected) without returning its resources."""

    def suppressOffers(framework_id):
        """Stop offering to a framework until it revives."""

    def reviveOffers(framework_id):
        """Clear a framework's refusal filters and un-suppress it."""

    def addAgent(agent_id, total, used=None):
        """Track an agent with ``total`` resources; ``used`` maps framework IDs to resources in use."""

    def removeAgent(agent_id):
        """Forget an agent and every allocation on it."""

    def activateAgent(agent_id):
        """Offer an agent's resources again."""

    def deactivateAgent(agent_id):
        """Stop offering an agent's resources (it disconnected)."""

    def recoverResources(framework_id, agent_id, resources, filters=None):
        """Return resources to the free pool, refusing them to the framework for ``filters``."""

    def updateAllocation(framework_id, agent_id, consumed, converted):
        """A framework's offer operation (RESERVE, UNRESERVE, CREATE, DESTROY) turned ``consumed``, of
        what it holds on an agent, into ``converted``: its allocation and the agent's total change."""

    def updateAvailable(agent_id, consumed, converted):
        """An operator's operation turns ``consumed`` free resources of an agent into ``converted``;
        returns False, changing nothing, when they are not all free."""

    def updateWeights(weights):
        """Set role weights (a mapping of role to weight)."""

    def updateQuota(role, quota):
        """Set a role's quota (a :class:`mesostw.allocator.quota.Quota`; an empty one removes it)."""

    def allocate(agent_ids=None):
        """Allocate free resources of the given agents (all when None); return (framework, agent, resources)."""


class IFrameworkLink(Interface):
    """The master's handle on a connected scheduler."""

    principal = Attribute("The authenticated principal of the connection, or None.")

    def send(event):
        """Deliver one v1 scheduler Event (a JSON-shaped dict); never raises."""

    def close():
        """Drop the connection (the framework failed over or was torn down)."""


class IMasterEndpoint(Interface):
    """The leading master as a scheduler session sees it (:class:`mesostw.master.master.Master` provides it).

    The master's PB and HTTP adapters and the in-process scheduler driver each keep one
    :class:`mesostw.scheduler.session.SchedulerSession` per connection over this; the refusals are the
    exceptions of :mod:`mesostw.scheduler.session`.
    """

    clock = Attribute("The IReactorTime the master runs on; in-process links deliver events on it.")
    leading = Attribute("Whether this master leads: only the leader takes subscriptions.")

    def subscribe(link, framework_info, principal=None, force=False):
        """Register, or fail over, a framework whose events go to ``link`` (an IFrameworkLink) and return its ID.

        ``principal`` is the one its connection authenticated as (None: anonymous), which the ACLs judge.
        Raises ``SubscriptionRefused`` (``NotLeading`` when this master does not lead)."""

    def call(framework_id, call):
        """Act on one parsed Call (any but SUBSCRIBE) of a subscribed framework; raises ``CallRefused``."""

    def disconnected(framework_id, link):
        """The connection behind ``link`` went away; the framework has its failover timeout to come back."""


class IAgentLink(Interface):
    """The master's handle on a registered agent."""

    def runTasks(framework_info, tasks, executor=None):
        """Start ``tasks`` (TaskInfos) of a framework; ``executor`` is the task group's executor."""

    def killTask(framework_id, task_id, grace_period=None):
        """Kill one task, allowing ``grace_period`` seconds between SIGTERM and SIGKILL."""

    def acknowledge(acknowledgements):
        """Forward scheduler acknowledgements, a list of (framework_id, task_id, uuid bytes)."""

    def shutdownFramework(framework_id):
        """Kill every executor and task of a framework on this agent."""

    def shutdownExecutor(framework_id, executor_id):
        """Shut one executor down."""

    def frameworkMessage(framework_id, executor_id, data):
        """Pass an opaque message from a scheduler to one of its executors."""

    def ping():
        """Health check; returns a Deferred that fires when the agent answers."""

    def removed(reason):
        """Tell the agent it was marked unreachable; it should re-register."""

    def checkpointResources(resources):
        """Give the agent its checkpointed resources (dynamic reservations and persistent volumes, a
        Resources) as the master has them: the agent checkpoints them and takes them as its own."""


class IMasterLink(Interface):
    """An agent's handle on the leading master."""

    def register(agent_info):
        """Register a new agent; Deferred firing with (agent_id, MasterInfo)."""

    def reregister(agent_info, tasks, executors, frameworks):
        """Register again with a known ID and everything running; Deferred firing with MasterInfo."""

    def statusUpdates(updates):
        """Forward status updates, a list of (framework_id, TaskStatus)."""

    def exitedExecutor(framework_id, executor_id, status):
        """Report that an executor process ended with ``status`` (a wait status or None)."""

    def executorMessage(framework_id, executor_id, data):
        """Pass an opaque message from an executor to its scheduler."""

    def unregister():
        """Leave the cluster for good (the agent is shutting down cleanly)."""

    def disconnect():
        """Drop the connection; the agent reconnects and re-registers."""


class IExecutorLink(Interface):
    """The agent's handle on a subscribed executor."""

    def send(event):
        """Deliver one v1 executor Event (a JSON-shaped dict); never raises."""

    def close():
        """Drop the connection."""


class IContainerizer(Interface):
    """Runs executor processes in sandboxes on an agent, each in a container that its isolators confine.

    A container is everything its executor starts; destroying it (or its executor ending) ends all of
    it, so that no process outlives the container the master counts free.
    """

    def recover(records):
        """Take back the containers a previous run of the agent checkpointed (ContainerRecords), and
        destroy the groups it left that no record names. Deferred firing with the IDs still running;
        the agent destroys those it does not want back."""

    def launch(container_id, executor_info, framework_info, directory, environment, user, resources, preload=(),
               native=False):
        """Fetch the executor's URIs into ``directory``, set up isolation for ``resources`` (the
        executor's and its first tasks' Resources) and start the executor; Deferred firing with its
        pid once started, failing (with the reason) if it could not be. ``preload`` names what a
        built-in executor will need beyond its usual modules ("health": its task has a health check);
        the agent passes it only when there is something to name. ``native`` (passed only when true):
        the command executor is the native one (:mod:`mesostw.executor.native`), for a plain command
        task."""

    def update(container_id, resources):
        """The container's tasks changed: isolate it for ``resources`` from now on."""

    def wait(container_id):
        """Deferred firing with a :class:`mesostw.agent.containers.Termination` once the container's
        executor has ended and every process of the container is gone."""

    def destroy(container_id):
        """Kill every process of a container; Deferred firing when they are gone."""

    def usage(container_id):
        """Resource statistics of a container (a ResourceStatistics-shaped dict)."""

    def limitation(container_id):
        """The :class:`mesostw.agent.containers.Limitation` a container ran into (memory, disk), or None."""

    def record(container_id):
        """The :class:`mesostw.agent.containers.ContainerRecord` to checkpoint for a started container, or None."""


class IIsolator(Interface):
    """One kind of isolation (Mesos's ``Isolator``, an ``--isolation`` entry such as ``cgroups/mem``
    or ``disk/du``); the containerizer calls each of its isolators at every step of a container."""

    name = Attribute("What it isolates, as named in --isolation.")

    def recover(records):
        """Containers of a previous run of the agent that are still running (ContainerRecords)."""

    def prepare(container_id, directory, resources):
        """Before the executor starts: set the container up; returns a dict of launch settings
        (``{"cgroups": [cgroup.procs paths the executor joins]}``), or {}."""

    def isolate(container_id, pid):
        """The executor started as ``pid``."""

    def update(container_id, resources):
        """The container's resources changed."""

    def usage(container_id):
        """ResourceStatistics fields this isolator knows of the container (a dict)."""

    def limitation(container_id):
        """A Limitation the container has broken, or None; checked periodically and when a task fails."""

    def cleanup(container_id):
        """The container's processes are gone: undo what ``prepare`` did."""


class IMasterDetector(Interface):
    """Finds the leading master."""

    def detect(previous=None):
        """Deferred firing with the leader's MasterInfo (or None) once it differs from ``previous``."""


class IScheduler(Interface):
    """A framework's scheduler callbacks (Mesos's ``Scheduler``)."""

    def registered(driver, frameworkId, masterInfo):
        """The framework registered; ``frameworkId`` is a string, ``masterInfo`` a MasterInfo."""

    def reregistered(driver, masterInfo):
        """The framework registered again, e.g. with a new leading master."""

    def disconnected(driver):
        """The driver lost the master; it will reconnect on its own."""

    def resourceOffers(driver, offers):
        """New offers (a list of Offer)."""

    def offerRescinded(driver, offerId):
        """An offer is no longer valid."""

    # Optional, as in pymesos: ``inverseOffers(driver, inverseOffers)`` (a list of
    # mesostw.model.maintenance.InverseOffer) and ``inverseOfferRescinded(driver, inverseOfferId)``; a
    # scheduler without them never hears of inverse offers.

    def statusUpdate(driver, status):
        """A TaskStatus for one of the framework's tasks."""

    def frameworkMessage(driver, executorId, agentId, data):
        """An executor sent a message (bytes)."""

    def slaveLost(driver, agentId):
        """An agent was lost."""

    def executorLost(driver, executorId, agentId, status):
        """An executor ended with ``status``."""

    def error(driver, message):
        """An unrecoverable error; the driver is aborted."""


class ISchedulerDriver(Interface):
    """What a scheduler calls (Mesos's ``SchedulerDriver``)."""

    def start():
        """Connect and register; returns a Deferred firing on the first registration."""

    def stop(failover=False):
        """Leave; with ``failover`` the master keeps the framework for its failover timeout."""

    def abort():
        """Stop sending calls without telling the master."""

    def acceptOffers(offerIds, operations, filters=None):
        """Accept offers (all on one agent) with operations (TaskInfo launches)."""

    def launchTasks(offerIds, tasks, filters=None):
        """Accept offers with a single LAUNCH of ``tasks``."""

    def declineOffer(offerId, filters=None):
        """Decline an offer, refusing its resources for ``filters.refuse_seconds``."""

    def acceptInverseOffers(inverseOfferIds, filters=None):
        """Accept inverse offers: the framework will free what they ask for before the unavailability."""

    def declineInverseOffer(inverseOfferIds, filters=None):
        """Decline inverse offers: the framework cannot free what they ask for in time."""

    def reviveOffers():
        """Clear filters and ask for offers again."""

    def suppressOffers():
        """Ask for no more offers until revived."""

    def killTask(taskId, agentId=None):
        """Kill a task."""

    def acknowledgeStatusUpdate(status):
        """Acknowledge a status update (explicit acknowledgements only)."""

    def reconcileTasks(statuses):
        """Ask for the latest state of tasks (all of them when ``statuses`` is empty)."""

    def sendFrameworkMessage(executorId, agentId, data):
        """Send bytes to an executor."""


class IStateStore(Interface):
    """Durable state as a tree of byte values at ``/``-separated relative paths (``"agents/S1"``).

    Every write has happened (fsync'd file, ZooKeeper transaction) when its Deferred fires, so
    callers acknowledge nothing before that. Writes are fenced: once the writer's claim on the
    store is gone (its ZooKeeper election node, its lock on a work_dir), every write fails with
    :class:`mesostw.store.StoreFenced` and changes nothing, so a deposed leader can never
    overwrite its successor's state. Reads see what is durable, not writes still in flight.
    Providers: :mod:`mesostw.store.memory`, :mod:`mesostw.store.files` (a snapshot and a journal
    in a locked directory), :mod:`mesostw.store.zookeeper`; :func:`mesostw.store.factory.open_store`
    picks one from a daemon's flags.
    """

    def get(path):
        """Deferred firing with the bytes stored at ``path``, or None when there are none."""

    def children(path):
        """Deferred firing with the sorted names directly under ``path`` ([] when none)."""

    def put(path, value):
        """Store ``value`` (bytes) at ``path``; fires once durable."""

    def delete(path):
        """Remove ``path`` and everything under it (absent is fine); fires once durable."""

    def commit(operations):
        """Apply :class:`mesostw.store.Put` and :class:`mesostw.store.Delete` operations atomically,
        all or none; fires once durable."""

    def scoped(prefix):
        """This store seen under ``prefix``: the same durability and fence, paths relative to it."""


class IRegistry(Interface):
    """Where a master's durable state lives (Mesos's registry): admitted and unreachable agents,
    frameworks, removed framework IDs and weights, kept as mutations over an IStateStore."""

    def recover():
        """Read the state; fires with a :class:`mesostw.master.registry.RegistryState`."""

    def apply(mutation):
        """Make one mutation durable; fires once it is, fails with RegistryError if it cannot be."""


class AbdicationRefused(Exception):
    """:meth:`IFrameworkHost.abdicate` cannot hand leadership over here; the message says why."""


class IFrameworkHost(Interface):
    """What a bundled framework gets from whoever runs it: inside the master's process
    (``mesos-master --frameworks=...``) or on its own under twistd (``mesos-cron``, ``mesos-service``).

    The framework builds everything from this, so the same code runs in both hosts.
    """

    reactor = Attribute("The reactor (time, TCP, threads); a framework never imports the global one.")
    name = Attribute("The framework plugin's name, e.g. 'cron'.")
    principal = Attribute("The principal the framework authenticates and registers as, or None.")
    store = Attribute("An IStateStore of the framework's own (ZooKeeper with --zk, files or memory otherwise).")
    router = Attribute("The mesostw.http.router.Router served on the framework's own HTTP port.")
    api_url = Attribute("This instance's API as 'http://host:port' (for webui_url and /v2/info), once listening.")

    def driver(scheduler, framework_info, implicit_acknowledgements=True):
        """A new ISchedulerDriver, also an IService, for ``scheduler`` against the leading master.

        ``framework_info`` is completed by the host (principal, webui_url). The framework makes the
        driver a child of its service once it leads; starting the service subscribes, stopping it
        fails over (the master keeps the framework for its failover timeout). With
        ``implicit_acknowledgements=False`` the driver acknowledges no status update by itself: the
        framework calls ``acknowledgeStatusUpdate`` once it has taken the update in (for instance
        once its outcome is durable), and the master keeps resending it until then."""

    def whenLeading():
        """A Deferred firing once this instance leads (at once when there is no election).

        Leadership is never handed back while the process lives: losing it ends the process, as a
        Mesos master and Marathon do, so there is no 'lost' signal to handle."""

    def leader():
        """The leading instance's API as 'host:port' when another instance leads (to proxy API
        calls to), or None when this one leads or no leader is known."""

    def abdicate():
        """Hand leadership to another instance (Marathon's ``DELETE /v2/leader``), a moment later so
        that the caller can still answer: the framework stops (its driver fails over), this instance
        leaves the election and its process ends, for its supervisor to restart it as a standby.
        Raises :class:`AbdicationRefused` with the reason where this host cannot do it."""


class IFrameworkPlugin(IPlugin):
    """A framework shipped with mesostw (cron, service) that any host can run.

    Found with ``twisted.plugin.getPlugins(IFrameworkPlugin)`` in ``twisted/plugins/``.
    """

    name = Attribute("Short name, e.g. 'cron' or 'service'; the master prefixes its flags with it ('--cron_*').")
    description = Attribute("One line for --help.")
    default_port = Attribute("The API's default port (Chronos's 4400, Marathon's 8080).")
    flags = Attribute("The framework's own flags, a tuple of mesostw.flags.Flag (without prefix).")

    def makeService(host, config):
        """Build the framework's IService from an IFrameworkHost and the Config of its ``flags``."""
