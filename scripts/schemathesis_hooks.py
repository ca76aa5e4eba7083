"""Schemathesis hooks for scripts/schemathesis: how the tool authenticates.

The tool tests every operation, `DELETE /api/user/api-keys/{id}` included, and it learns ids
from the answers it gets, so sooner or later it revokes the very key it authenticates with.
From then on every request would be a 401 and the rest of the run would test nothing but
authentication. This provider mints keys with the service's own admin command
(`sip-trunks api-keys create`), and schemathesis calls it again, then replays the request,
whenever a request that carried the key gets a 401 (its default `retry_on`). Cases that
send a wrong or missing token on purpose keep their 401.

Reads SIP_TRUNKS_BIN and SCHEMATHESIS_EMAIL; DATABASE_URL reaches the command unchanged.
"""

import os
import subprocess

import schemathesis


@schemathesis.auth()
class MintedApiKey:
    """A fresh API key of the test user, minted when the tool needs one."""

    minted = 0

    def get(self, case, context):
        MintedApiKey.minted += 1
        result = subprocess.run(
            [
                os.environ["SIP_TRUNKS_BIN"],
                "api-keys",
                "create",
                "--email",
                os.environ["SCHEMATHESIS_EMAIL"],
                "--name",
                f"schemathesis {MintedApiKey.minted}",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout.strip().splitlines()[-1]

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
