"""The `suyuan` command line (``cli.main``)."""

import os

# gRPC's C core logs a failed TLS handshake at INFO on stderr; the CLI's one error line
# names it (``node.tls.tls_hint``)
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
