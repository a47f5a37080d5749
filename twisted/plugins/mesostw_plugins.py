"""twistd plugins of mesostw: ``mesos-master``, ``mesos-slave``/``mesos-agent`` and ``mesos-local``."""

from twisted.application.service import ServiceMaker

mesosMaster = ServiceMaker("mesostw master", "mesostw.master.tap", "A mesostw master (Mesos-compatible)",
                           "mesos-master")
mesosSlave = ServiceMaker("mesostw agent", "mesostw.agent.tap", "A mesostw agent (Mesos-compatible)",
                          "mesos-slave")
mesosAgent = ServiceMaker("mesostw agent", "mesostw.agent.tap", "A mesostw agent (alias of mesos-slave)",
                          "mesos-agent")
mesosLocal = ServiceMaker("mesostw local cluster", "mesostw.local",
                          "A master and agents in one process, without ZooKeeper", "mesos-local")
