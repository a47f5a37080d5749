"""ZooKeeper: URLs, kazoo bridged to Deferreds, leader election and detection of masters."""
