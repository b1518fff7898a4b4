"""What the tests and the benches share: a gateway in this process with clients for it
(`harness.gateway`), and the Logs page driven in Chromium (`harness.page`). It imports
neither tests/ nor bench/; both import it."""
