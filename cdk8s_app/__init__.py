"""backlog-gitops: GitOps for NATS JetStream backlog autoscaling."""

import os

# Node 20 is past jsii's support window; keep its banner out of every output. DEVELOPERS.md asks for the first
# variable; jsii >= 1.1xx reads the second once the Node release is end-of-life.
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
