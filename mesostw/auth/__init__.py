"""The security core, free of any transport: credentials files (:mod:`.credentials`), SASL CRAM-MD5 on
twisted.cred (:mod:`.crammd5`) and Mesos ACLs (:mod:`.acls`). The master, agent and drivers wire them up."""
