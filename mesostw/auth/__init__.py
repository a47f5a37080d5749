"""Security. The core is free of any transport: credentials files (:mod:`.credentials`), SASL CRAM-MD5 on
twisted.cred (:mod:`.crammd5`), Mesos ACLs (:mod:`.acls`) and the master's policy built from its flags
(:mod:`.policy`). The adapters apply it on a wire: CRAM-MD5 over PB (:mod:`.pb`, client side in
:mod:`.client`) and HTTP Basic (:mod:`.http`)."""
